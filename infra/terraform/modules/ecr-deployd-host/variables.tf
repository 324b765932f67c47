# Same parameters as infra/cloudformation/ecr-deployd.yaml (snake_case); a test keeps them in step.

variable "host_name" {
  description = "Name of the host this module serves; names the queue, DLQ, rule, policies and role."
  type        = string
  # 43: the longest names built from it, "ecr-deployd-<host_name>-archives" (a rule) and the
  # event bus policy's statement id "ecr-deployd-<host_name>-registry", stay within AWS's 64.
  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,43}$", var.host_name))
    error_message = "host_name: 1-43 letters, digits or hyphens (names built from it must stay within 64 characters)."
  }
}

variable "repositories" {
  description = "ECR repository names to follow. Empty when only repository_prefix is used. As many as fit in EventBridge's default 2,048-character event pattern and IAM's 6,144-character managed policy (a few dozen; checked at plan): use repository_prefix for more."
  type        = list(string)
  default     = []
}

variable "repository_prefix" {
  description = "Follow every repository whose name starts with this prefix (e.g. \"team-a/\"). Empty = none."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[a-z0-9._/-]*$", var.repository_prefix))
    error_message = "repository_prefix: ECR repository names are lower case letters, digits and . _ - /."
  }
}

variable "registry_account_id" {
  description = "Account that owns the repositories when it is not this one (its ECR events must be forwarded to this account's default bus). Empty = this account."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([0-9]{12})?$", var.registry_account_id))
    error_message = "registry_account_id: empty or a 12-digit account id."
  }
}

variable "visibility_timeout_seconds" {
  description = "Queue visibility timeout; keep equal to [queue] visibility_timeout_seconds."
  type        = number
  default     = 300
  validation {
    condition     = var.visibility_timeout_seconds >= 30 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds: 30..43200."
  }
}

variable "message_retention_seconds" {
  description = "How long an unconsumed event waits for the agent (the sweep catches up anyway)."
  type        = number
  default     = 345600
  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds: 60..1209600."
  }
}

variable "max_receive_count" {
  description = "Receives before a message the agent cannot process moves to the DLQ."
  type        = number
  default     = 5
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count: 1..1000."
  }
}

variable "dead_letter_retention_seconds" {
  description = "How long the DLQ keeps messages for inspection."
  type        = number
  default     = 1209600
  validation {
    condition     = var.dead_letter_retention_seconds >= 60 && var.dead_letter_retention_seconds <= 1209600
    error_message = "dead_letter_retention_seconds: 60..1209600."
  }
}

variable "result_event_bus_name" {
  description = "Event bus in this account for the agent's \"ECR Deployment Result\" events ([notify] event_bus). Empty = no events:PutEvents."
  type        = string
  default     = ""
}

variable "wave" {
  description = "The host's fleet wave ([fleet] wave), 1-20. 1 follows ECR pushes. N > 1 needs results_bus_name: a rule on that bus delivers the deployment results of wave N - 1 to this host's queue."
  type        = number
  default     = 1
  validation {
    condition     = var.wave >= 1 && var.wave <= 20 && floor(var.wave) == var.wave
    error_message = "wave: a whole number 1..20."
  }
}

variable "results_bus_name" {
  description = "The fleet's results bus (one per fleet). Every host puts its \"ECR Deployment Result\" events there ([notify] event_bus); with wave > 1, wave N - 1's results reach this host's queue. Empty = no fleet. Takes the place of result_event_bus_name when both are set."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]{0,256}$", var.results_bus_name))
    error_message = "results_bus_name: an event bus name."
  }
}

variable "roles_anywhere_trust_anchor_arn" {
  description = "IAM Roles Anywhere trust anchor ARN. When set, a role for the host is created (certificate CN must equal host_name) with the agent policies attached."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:trust-anchor/[0-9a-f-]+)?$", var.roles_anywhere_trust_anchor_arn))
    error_message = "roles_anywhere_trust_anchor_arn: empty or a trust-anchor ARN."
  }
}

variable "scan_gate" {
  description = "\"true\" when the agent gates on ECR scan findings: a second rule delivers the followed repositories' scan results (ECR Image Scan, Inspector2 Scan) to the queue, and the agent may read findings on those repositories only."
  type        = string
  default     = "false"
  validation {
    condition     = contains(["false", "true"], var.scan_gate)
    error_message = "scan_gate: \"false\" or \"true\"."
  }
}

variable "archive_bucket_name" {
  description = "The bucket of \"docker save\" archives that containers follow with the label ecr-deployd.source=s3://BUCKET/KEY (SPEC 13). A rule delivers its \"Object Created\" events under archive_prefix to the queue, and the agent may s3:GetObject under that prefix only. Empty = no archives."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.archive_bucket_name))
    error_message = "archive_bucket_name: empty, or an S3 bucket name."
  }
}

variable "archive_prefix" {
  description = "Key prefix of the archives this host follows (e.g. \"releases/web/\"). Empty = the whole bucket."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[^*?]{0,512}$", var.archive_prefix))
    error_message = "archive_prefix: at most 512 characters, no wildcards."
  }
}

variable "archive_kms_key_arn" {
  description = "The KMS key the archive bucket encrypts with (SSE-KMS): the agent may kms:Decrypt with it. Empty = SSE-S3 or no encryption."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.archive_kms_key_arn))
    error_message = "archive_kms_key_arn: empty, or a KMS key ARN."
  }
}

variable "archive_bucket_notification" {
  description = "Turn on the archive bucket's EventBridge notification (this replaces the bucket's whole notification configuration: false when the bucket has others, and turn it on there)."
  type        = bool
  default     = true
}

variable "ledger_bucket_name" {
  description = "The fleet ledger's bucket (SPEC 17). The agent writes its object ledger_prefix + host_name + \".json\" there and may s3:PutObject on that key only; the config snippet names the host host_name in the fleet. Empty = no ledger."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.ledger_bucket_name))
    error_message = "ledger_bucket_name: empty, or an S3 bucket name."
  }
}

variable "ledger_prefix" {
  description = "Key prefix of the fleet's ledger objects, ending in \"/\" (e.g. \"prod/\"). Empty = the bucket's top."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[^*?]{0,500}/$", var.ledger_prefix))
    error_message = "ledger_prefix: empty, or a prefix ending in \"/\" without wildcards."
  }
}
