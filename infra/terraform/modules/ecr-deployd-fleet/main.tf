# The AWS side of one fleet: the results bus (SPEC 14), optionally the e-mail route of its
# rolled_back / rejected / failed results (SNS, no mail credentials on any host), and optionally
# the fleet ledger's bucket (SPEC 17) with the operators' read policy. The CloudFormation
# equivalents: fleet-results-bus.yaml (AlertEmails) and fleet-ledger.yaml.

locals {
  has_alerts = length(var.alert_emails) > 0
  has_ledger = var.ledger_bucket_name != ""
}

resource "aws_cloudwatch_event_bus" "results_bus" {
  name = var.bus_name
}

# ---------------------------------------------------------------- e-mail route

resource "aws_sns_topic" "alert_topic" {
  #checkov:skip=CKV_AWS_26:EventBridge cannot publish to a topic under the AWS managed SNS key; the messages hold no secrets
  count        = local.has_alerts ? 1 : 0
  name         = "${var.bus_name}-alerts"
  display_name = "ecr-deployd"
}

resource "aws_sns_topic_subscription" "alert_email" {
  for_each  = local.has_alerts ? toset(var.alert_emails) : toset([])
  topic_arn = aws_sns_topic.alert_topic[0].arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_event_rule" "alert_rule" {
  count          = local.has_alerts ? 1 : 0
  name           = "${var.bus_name}-alerts"
  description    = "The fleet's rolled_back, rejected and failed deployment results, by e-mail"
  event_bus_name = aws_cloudwatch_event_bus.results_bus.name
  event_pattern = jsonencode({
    source        = ["ecr-deployd"]
    "detail-type" = ["ECR Deployment Result"]
    detail        = { outcome = ["rolled_back", "rejected", "failed"] }
  })
}

resource "aws_cloudwatch_event_target" "alert_rule" {
  count          = local.has_alerts ? 1 : 0
  rule           = aws_cloudwatch_event_rule.alert_rule[0].name
  event_bus_name = aws_cloudwatch_event_bus.results_bus.name
  target_id      = "alert-topic"
  arn            = aws_sns_topic.alert_topic[0].arn
  input_transformer {
    input_paths = {
      host       = "$.detail.host"
      container  = "$.detail.container"
      outcome    = "$.detail.outcome"
      repository = "$.detail.repository"
      tag        = "$.detail.tag"
      from       = "$.detail.from_digest"
      to         = "$.detail.to_digest"
      reason     = "$.detail.error"
    }
    input_template = "\"ecr-deployd on <host>: <container> <outcome> (<repository>:<tag>) <from> -> <to>: <reason>\""
  }
}

resource "aws_sns_topic_policy" "alert_topic_policy" {
  count = local.has_alerts ? 1 : 0
  arn   = aws_sns_topic.alert_topic[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "OnlyTheAlertRule"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alert_topic[0].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.alert_rule[0].arn } }
    }]
  })
}

# ---------------------------------------------------------------- fleet ledger

resource "aws_s3_bucket" "ledger_bucket" {
  #checkov:skip=CKV_AWS_18:access logging needs a second bucket; ledger reads and writes are in CloudTrail data events where wanted
  #checkov:skip=CKV_AWS_144:no replication needed: every host rewrites its object at least once per sweep interval
  #checkov:skip=CKV_AWS_145:SSE-S3 so that hosts and operators need no KMS grants; the objects hold digests and names, no secrets
  #checkov:skip=CKV2_AWS_62:no event notifications: nothing reacts to ledger writes, readers poll
  count  = local.has_ledger ? 1 : 0
  bucket = var.ledger_bucket_name
}

resource "aws_s3_bucket_versioning" "ledger_bucket" {
  count  = local.has_ledger ? 1 : 0
  bucket = aws_s3_bucket.ledger_bucket[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "ledger_bucket" {
  count  = local.has_ledger ? 1 : 0
  bucket = aws_s3_bucket.ledger_bucket[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "ledger_bucket" {
  count                   = local.has_ledger ? 1 : 0
  bucket                  = aws_s3_bucket.ledger_bucket[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "ledger_bucket" {
  count  = local.has_ledger ? 1 : 0
  bucket = aws_s3_bucket.ledger_bucket[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "ledger_bucket" {
  count  = local.has_ledger ? 1 : 0
  bucket = aws_s3_bucket.ledger_bucket[0].id
  rule {
    id     = "expire-replaced-ledger-objects"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.ledger_noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "ledger_bucket_policy" {
  count  = local.has_ledger ? 1 : 0
  bucket = aws_s3_bucket.ledger_bucket[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.ledger_bucket[0].arn, "${aws_s3_bucket.ledger_bucket[0].arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

resource "aws_iam_policy" "ledger_read_policy" {
  count       = local.has_ledger ? 1 : 0
  name        = "ecr-deployd-ledger-${var.ledger_bucket_name}-read"
  description = "Lets operators and pipelines read the fleet ledger (ecr-deployd fleet, fleet in-use)"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListLedger"
        Effect    = "Allow"
        Action    = ["s3:ListBucket", "s3:ListBucketVersions"]
        Resource  = aws_s3_bucket.ledger_bucket[0].arn
        Condition = { StringLike = { "s3:prefix" = "${var.ledger_prefix}*" } }
      },
      {
        Sid      = "ReadLedger"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion"]
        Resource = "${aws_s3_bucket.ledger_bucket[0].arn}/${var.ledger_prefix}*"
      },
    ]
  })
}
