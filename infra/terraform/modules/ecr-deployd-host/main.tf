# ecr-deployd, the AWS side for one host: the same resources as
# infra/cloudformation/ecr-deployd.yaml, named after its logical ids in snake_case.
# One module instance per host (for_each over the fleet): an SQS message is consumed once.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  partition        = data.aws_partition.current.partition
  region           = data.aws_region.current.name
  account_id       = data.aws_caller_identity.current.account_id
  registry_account = var.registry_account_id != "" ? var.registry_account_id : local.account_id
  has_list         = length(var.repositories) > 0
  has_prefix       = var.repository_prefix != ""
  has_result_bus   = var.result_event_bus_name != ""
  has_results_bus  = var.results_bus_name != ""
  follows_wave     = local.has_results_bus && var.wave > 1
  publishes_to     = local.has_results_bus ? var.results_bus_name : var.result_event_bus_name
  has_trust_anchor = var.roles_anywhere_trust_anchor_arn != ""
  has_scan_gate    = var.scan_gate == "true"
  has_archives     = var.archive_bucket_name != ""
  has_archive_key  = local.has_archives && var.archive_kms_key_arn != ""
  has_ledger       = var.ledger_bucket_name != ""

  push_detail = {
    "action-type" = ["PUSH"]
    result        = ["SUCCESS"]
  }
  by_name   = { "repository-name" = var.repositories }
  by_prefix = { "repository-name" = [{ prefix = var.repository_prefix }] }
  detail = (
    local.has_list && local.has_prefix ? merge(local.push_detail, { "$or" = [local.by_name, local.by_prefix] }) :
    local.has_prefix ? merge(local.push_detail, local.by_prefix) :
    merge(local.push_detail, local.by_name)
  )

  # Scan results: basic scanning names the repository, enhanced scanning (Inspector) its ARN.
  arn_base       = "arn:${local.partition}:ecr:${local.region}:${local.registry_account}:repository/"
  scan_by_name   = { "repository-name" = concat(var.repositories, [for r in var.repositories : "${local.arn_base}${r}"]) }
  scan_by_prefix = { "repository-name" = [{ prefix = var.repository_prefix }, { prefix = "${local.arn_base}${var.repository_prefix}" }] }
  scan_detail = (
    local.has_list && local.has_prefix ? { "$or" = [local.scan_by_name, local.scan_by_prefix] } :
    local.has_prefix ? local.scan_by_prefix : local.scan_by_name
  )
  # The patterns of the rules that name repositories. EventBridge takes a pattern of up to 2,048
  # characters by default (a quota, adjustable to 4,096): the rules check their size at plan.
  push_pattern = jsonencode({
    source        = ["aws.ecr"]
    "detail-type" = ["ECR Image Action"]
    account       = [local.registry_account]
    detail        = local.detail
  })
  scan_pattern = jsonencode({
    source        = ["aws.ecr", "aws.inspector2"]
    "detail-type" = ["ECR Image Scan", "Inspector2 Scan"]
    account       = [local.registry_account]
    detail        = local.scan_detail
  })
  # The rules whose events the queues admit.
  rule_arns = concat([aws_cloudwatch_event_rule.push_rule.arn], aws_cloudwatch_event_rule.scan_rule[*].arn, aws_cloudwatch_event_rule.wave_rule[*].arn, aws_cloudwatch_event_rule.archive_rule[*].arn)
  pull_actions = concat(
    ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
    local.has_scan_gate ? ["ecr:DescribeImageScanFindings", "ecr:BatchGetRepositoryScanningConfiguration"] : [],
  )

  repository_arns = concat(
    [for r in var.repositories : "arn:${local.partition}:ecr:${local.region}:${local.registry_account}:repository/${r}"],
    local.has_prefix ? ["arn:${local.partition}:ecr:${local.region}:${local.registry_account}:repository/${var.repository_prefix}*"] : [],
  )
}

resource "aws_sqs_queue" "dead_letter_queue" {
  name                      = "ecr-deployd-${var.host_name}-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = var.dead_letter_retention_seconds
}

resource "aws_sqs_queue" "queue" {
  name = "ecr-deployd-${var.host_name}"
  # SSE-SQS: EventBridge can write to it (it cannot use the AWS-managed aws/sqs KMS key).
  sqs_managed_sse_enabled    = true
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter_queue.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_cloudwatch_event_rule" "push_rule" {
  name          = "ecr-deployd-${var.host_name}"
  description   = "ECR image pushes followed by ecr-deployd on ${var.host_name}"
  state         = "ENABLED"
  event_pattern = local.push_pattern

  lifecycle {
    precondition {
      condition     = local.has_list || local.has_prefix
      error_message = "Set repositories, repository_prefix, or both."
    }
    precondition {
      condition     = length(local.push_pattern) <= 2048
      error_message = "The push rule's event pattern would be ${length(local.push_pattern)} characters, over EventBridge's default limit of 2,048: list fewer repositories and follow the others with repository_prefix."
    }
  }
}

# Inline in the CloudFormation rule (Targets).
resource "aws_cloudwatch_event_target" "push_rule" {
  rule      = aws_cloudwatch_event_rule.push_rule.name
  target_id = "queue"
  arn       = aws_sqs_queue.queue.arn
  # No role_arn: an SQS target is authorised by the queue policy.
  # Events older than an hour are not worth delivering: the agent's periodic sweep has
  # compared every container with ECR many times by then.
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter_queue.arn
  }
}

resource "aws_cloudwatch_event_rule" "scan_rule" {
  count         = local.has_scan_gate ? 1 : 0
  name          = "ecr-deployd-${var.host_name}-scans"
  description   = "Scan results of the repositories followed by ecr-deployd on ${var.host_name}"
  state         = "ENABLED"
  event_pattern = local.scan_pattern

  lifecycle {
    precondition {
      condition     = length(local.scan_pattern) <= 2048
      error_message = "The scan rule's event pattern (each repository by name and by ARN) would be ${length(local.scan_pattern)} characters, over EventBridge's default limit of 2,048: list fewer repositories and follow the others with repository_prefix."
    }
  }
}

# Inline in the CloudFormation rule (Targets).
resource "aws_cloudwatch_event_target" "scan_rule" {
  count     = local.has_scan_gate ? 1 : 0
  rule      = aws_cloudwatch_event_rule.scan_rule[0].name
  target_id = "queue"
  arn       = aws_sqs_queue.queue.arn
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter_queue.arn
  }
}

# Fleet waves: the previous wave's deployment results, from the fleet's results bus.
resource "aws_cloudwatch_event_rule" "wave_rule" {
  count          = local.follows_wave ? 1 : 0
  name           = "ecr-deployd-${var.host_name}-wave"
  description    = "Deployment results of the previous wave, followed by ecr-deployd on ${var.host_name} (wave ${var.wave})"
  event_bus_name = var.results_bus_name
  event_pattern = jsonencode({
    source        = ["ecr-deployd"]
    "detail-type" = ["ECR Deployment Result"]
    # The string wave_key ("wave-N"), not the number: matching is type-sensitive (SPEC §14).
    detail = { wave_key = ["wave-${var.wave - 1}"] }
  })
}

resource "aws_cloudwatch_event_target" "wave_rule" {
  count          = local.follows_wave ? 1 : 0
  rule           = aws_cloudwatch_event_rule.wave_rule[0].name
  event_bus_name = var.results_bus_name
  target_id      = "queue"
  arn            = aws_sqs_queue.queue.arn
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter_queue.arn
  }
}

data "aws_iam_policy_document" "queue_policy" {
  statement {
    sid       = "OnlyThePushRuleSends"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = local.rule_arns
    }
  }
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.queue.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "queue_policy" {
  queue_url = aws_sqs_queue.queue.id
  policy    = data.aws_iam_policy_document.queue_policy.json
}

data "aws_iam_policy_document" "dead_letter_queue_policy" {
  statement {
    sid       = "OnlyThePushRuleDeadLetters"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter_queue.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = local.rule_arns
    }
  }
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dead_letter_queue.arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letter_queue_policy" {
  queue_url = aws_sqs_queue.dead_letter_queue.id
  policy    = data.aws_iam_policy_document.dead_letter_queue_policy.json
}

resource "aws_cloudwatch_event_bus_policy" "registry_account_bus_policy" {
  count          = var.registry_account_id != "" ? 1 : 0
  event_bus_name = "default"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ecr-deployd-${var.host_name}-registry"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${var.registry_account_id}:root" }
      Action    = "events:PutEvents"
      Resource  = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/default"
    }]
  })
}

data "aws_iam_policy_document" "agent_policy" {
  statement {
    sid       = "ConsumeQueue"
    effect    = "Allow"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.queue.arn]
  }
  statement {
    sid     = "EcrLogin"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken has no resource-level permissions; "*" is the only valid resource.
    resources = ["*"]
  }
  statement {
    sid     = "AwsSignerRevocation"
    effect  = "Allow"
    actions = ["signer:GetRevocationStatus"]
    # checkov:skip=CKV_AWS_356:signer:GetRevocationStatus has no resource-level permissions; the signature gate asks it about AWS Signer signatures.
    resources = ["*"]
  }
  statement {
    sid       = "PullFollowedRepositories"
    effect    = "Allow"
    actions   = local.pull_actions
    resources = local.repository_arns
  }
  statement {
    sid       = "FindRuleForDoctor"
    effect    = "Allow"
    actions   = ["events:ListRuleNamesByTarget"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/*"]
  }
}

resource "aws_iam_policy" "agent_policy" {
  name        = "ecr-deployd-${var.host_name}-agent"
  description = "What ecr-deployd on ${var.host_name} needs, and nothing more"
  policy      = data.aws_iam_policy_document.agent_policy.json

  lifecycle {
    # Checked at plan once the queue exists; on the first apply, just before the policy is
    # created (its document names the new queue's ARN).
    precondition {
      condition     = length(replace(data.aws_iam_policy_document.agent_policy.json, "/\\s/", "")) <= 6144
      error_message = "The agent policy would be over IAM's limit of 6,144 characters for a managed policy: list fewer repositories and follow the others with repository_prefix."
    }
  }
}

# Enhanced scanning: ECR reads the findings from Inspector for the caller (scan gate only).
resource "aws_iam_policy" "inspector_policy" {
  count       = local.has_scan_gate ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-inspector"
  description = "Lets ecr-deployd on ${var.host_name} read enhanced-scanning findings"
  # checkov:skip=CKV_AWS_355:Inspector's list actions have no resource-level permissions.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ReadInspectorFindings"
      Effect   = "Allow"
      Action   = ["inspector2:ListFindings", "inspector2:ListCoverage"]
      Resource = "*"
    }]
  })
}

resource "aws_iam_policy" "results_policy" {
  count       = local.has_result_bus || local.has_results_bus ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-results"
  description = "Lets ecr-deployd on ${var.host_name} publish deployment results"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "PublishDeploymentResults"
      Effect   = "Allow"
      Action   = "events:PutEvents"
      Resource = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/${local.publishes_to}"
    }]
  })
}

# S3 archives (SPEC 13): new objects under the prefix of the archive bucket. The bucket's
# EventBridge notification must be on (archive_bucket_notification, or the bucket's owner).
resource "aws_cloudwatch_event_rule" "archive_rule" {
  count       = local.has_archives ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-archives"
  description = "New S3 archives followed by ecr-deployd on ${var.host_name}"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = merge(
      { bucket = { name = [var.archive_bucket_name] } },
      var.archive_prefix != "" ? { object = { key = [{ prefix = var.archive_prefix }] } } : {},
    )
  })
}

resource "aws_cloudwatch_event_target" "archive_rule" {
  count     = local.has_archives ? 1 : 0
  rule      = aws_cloudwatch_event_rule.archive_rule[0].name
  target_id = "queue"
  arn       = aws_sqs_queue.queue.arn
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letter_queue.arn
  }
}

# Terraform only: CloudFormation cannot change a bucket it did not create (archive-bucket.yaml
# creates one with the notification on). This sets the bucket's whole notification
# configuration: leave it off when the bucket has other notifications.
resource "aws_s3_bucket_notification" "archive_bucket_notification" {
  count       = local.has_archives && var.archive_bucket_notification ? 1 : 0
  bucket      = var.archive_bucket_name
  eventbridge = true
}

resource "aws_iam_policy" "archives_policy" {
  count       = local.has_archives ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-archives"
  description = "Lets ecr-deployd on ${var.host_name} read the S3 archives it follows"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ReadArchives"
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = "arn:${local.partition}:s3:::${var.archive_bucket_name}/${var.archive_prefix}*"
    }]
  })
}

resource "aws_iam_policy" "archives_key_policy" {
  count       = local.has_archive_key ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-archives-key"
  description = "Lets ecr-deployd on ${var.host_name} decrypt the S3 archives it reads"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DecryptArchives"
      Effect    = "Allow"
      Action    = "kms:Decrypt"
      Resource  = var.archive_kms_key_arn
      Condition = { StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" } }
    }]
  })
}

resource "aws_iam_policy" "ledger_policy" {
  count       = local.has_ledger ? 1 : 0
  name        = "ecr-deployd-${var.host_name}-ledger"
  description = "Lets ecr-deployd on ${var.host_name} write its own fleet ledger object"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "WriteOwnLedgerObject"
      Effect   = "Allow"
      Action   = "s3:PutObject"
      Resource = "arn:${local.partition}:s3:::${var.ledger_bucket_name}/${var.ledger_prefix}${var.host_name}.json"
    }]
  })
}

resource "aws_iam_role" "host_role" {
  count                = local.has_trust_anchor ? 1 : 0
  name                 = "ecr-deployd-${var.host_name}"
  description          = "ecr-deployd on ${var.host_name}, through IAM Roles Anywhere"
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "rolesanywhere.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
      Condition = {
        ArnEquals    = { "aws:SourceArn" = var.roles_anywhere_trust_anchor_arn }
        StringEquals = { "aws:PrincipalTag/x509Subject/CN" = var.host_name }
      }
    }]
  })
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_agent" {
  count      = local.has_trust_anchor ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.agent_policy.arn
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_results" {
  count      = local.has_trust_anchor && (local.has_result_bus || local.has_results_bus) ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.results_policy[0].arn
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_inspector" {
  count      = local.has_trust_anchor && local.has_scan_gate ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.inspector_policy[0].arn
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_archives" {
  count      = local.has_trust_anchor && local.has_archives ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.archives_policy[0].arn
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_archives_key" {
  count      = local.has_trust_anchor && local.has_archive_key ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.archives_key_policy[0].arn
}

# Inline in the CloudFormation role (ManagedPolicyArns).
resource "aws_iam_role_policy_attachment" "host_role_ledger" {
  count      = local.has_trust_anchor && local.has_ledger ? 1 : 0
  role       = aws_iam_role.host_role[0].name
  policy_arn = aws_iam_policy.ledger_policy[0].arn
}
