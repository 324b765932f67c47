variable "bus_name" {
  description = "Name of the fleet's results bus (the hosts' results_bus_name and [notify] event_bus)."
  type        = string
  default     = "ecr-deployd-results"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.bus_name))
    error_message = "bus_name: 1-256 letters, digits, dots, underscores or hyphens."
  }
}

variable "alert_emails" {
  description = "E-mail addresses that get the fleet's rolled_back, rejected and failed results (each confirms its subscription once). Empty = no e-mail route."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^,@\\s]+@[^,@\\s]+$", e))])
    error_message = "alert_emails: e-mail addresses."
  }
}

variable "ledger_bucket_name" {
  description = "The fleet ledger's bucket (SPEC 17), created here: versioned, private, TLS only. Empty = no ledger."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.ledger_bucket_name))
    error_message = "ledger_bucket_name: empty, or an S3 bucket name."
  }
}

variable "ledger_prefix" {
  description = "Key prefix of the ledger objects, ending in \"/\" (the hosts' ledger_prefix). Empty = the bucket's top."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^$|^[^*?]{0,500}/$", var.ledger_prefix))
    error_message = "ledger_prefix: empty, or a prefix ending in \"/\" without wildcards."
  }
}

variable "ledger_noncurrent_version_days" {
  description = "Days a replaced ledger object is kept as a noncurrent version before it expires."
  type        = number
  default     = 90
}
