output "bus_name" {
  description = "results_bus_name of every host module of the fleet, and their [notify] event_bus"
  value       = aws_cloudwatch_event_bus.results_bus.name
}

output "bus_arn" {
  description = "ARN of the results bus"
  value       = aws_cloudwatch_event_bus.results_bus.arn
}

output "alert_topic_arn" {
  description = "The topic the fleet's rolled_back, rejected and failed results go to; add subscriptions to it"
  value       = local.has_alerts ? aws_sns_topic.alert_topic[0].arn : null
}

output "ledger_url" {
  description = "[fleet] ledger of every host, and what `ecr-deployd fleet --ledger` takes"
  value       = local.has_ledger ? "s3://${aws_s3_bucket.ledger_bucket[0].id}/${var.ledger_prefix}" : null
}

output "ledger_bucket_arn" {
  description = "ARN of the ledger bucket"
  value       = local.has_ledger ? aws_s3_bucket.ledger_bucket[0].arn : null
}

output "ledger_read_policy_arn" {
  description = "Attach to the operators' and pipelines' principals that read the ledger"
  value       = local.has_ledger ? aws_iam_policy.ledger_read_policy[0].arn : null
}
