# Same outputs as infra/cloudformation/ecr-deployd.yaml (snake_case); a test keeps them in step.

output "queue_url" {
  description = "[queue] url of the agent on this host"
  value       = aws_sqs_queue.queue.url
}

output "queue_arn" {
  description = "ARN of the host's queue"
  value       = aws_sqs_queue.queue.arn
}

output "dead_letter_queue_url" {
  description = "Where undeliverable events and unprocessable messages end up"
  value       = aws_sqs_queue.dead_letter_queue.url
}

output "rule_arn" {
  description = "The EventBridge rule that feeds the queue"
  value       = aws_cloudwatch_event_rule.push_rule.arn
}

output "wave_rule_arn" {
  description = "The rule on the results bus that delivers the previous wave's results to the queue"
  value       = local.follows_wave ? aws_cloudwatch_event_rule.wave_rule[0].arn : null
}

output "scan_rule_arn" {
  description = "The EventBridge rule that delivers scan results to the queue"
  value       = local.has_scan_gate ? aws_cloudwatch_event_rule.scan_rule[0].arn : null
}

output "agent_policy_arn" {
  description = "Attach to the host's principal (done for host_role_arn when a trust anchor is given)"
  value       = aws_iam_policy.agent_policy.arn
}

output "inspector_policy_arn" {
  description = "Attach next to agent_policy_arn (done for host_role_arn) so the scan gate reads enhanced-scanning findings (null without the scan gate)"
  value       = local.has_scan_gate ? aws_iam_policy.inspector_policy[0].arn : null
}

output "results_policy_arn" {
  description = "Attach next to agent_policy_arn so the agent can publish results (null without a results bus)"
  value       = local.has_result_bus || local.has_results_bus ? aws_iam_policy.results_policy[0].arn : null
}

output "host_role_arn" {
  description = "Role for the host's IAM Roles Anywhere profile (null without a trust anchor)"
  value       = local.has_trust_anchor ? aws_iam_role.host_role[0].arn : null
}

output "config_snippet" {
  description = "Paste into /etc/ecr-deployd/config.toml"
  value       = <<-EOT
    [aws]
    region = "${data.aws_region.current.name}"

    [queue]
    url = "${aws_sqs_queue.queue.url}"
    visibility_timeout_seconds = ${var.visibility_timeout_seconds}
    %{if local.publishes_to != ""}
    [notify]
    event_bus = "${local.publishes_to}"
    %{endif}
    [fleet]
    wave = ${var.wave}
    %{if local.has_ledger}name = "${var.host_name}"
    ledger = "s3://${var.ledger_bucket_name}/${var.ledger_prefix}"
    %{endif}
  EOT
}

output "archive_rule_arn" {
  description = "The EventBridge rule that delivers new archives under archive_prefix to the queue"
  value       = local.has_archives ? aws_cloudwatch_event_rule.archive_rule[0].arn : null
}

output "archives_policy_arn" {
  description = "Attach next to agent_policy_arn (done for host_role_arn) so the agent can read archives"
  value       = local.has_archives ? aws_iam_policy.archives_policy[0].arn : null
}

output "archives_key_policy_arn" {
  description = "Attach next to archives_policy_arn (done for host_role_arn) to decrypt SSE-KMS archives"
  value       = local.has_archive_key ? aws_iam_policy.archives_key_policy[0].arn : null
}

output "ledger_policy_arn" {
  description = "Attach next to agent_policy_arn (done for host_role_arn) so the agent can write its ledger object"
  value       = local.has_ledger ? aws_iam_policy.ledger_policy[0].arn : null
}
