# A fleet: one queue, rule and policy set per host, from one map, and the fleet's results bus.
#
#   terraform init && terraform apply \
#     -var 'hosts={ "canary-01" = { wave = 1 }, "web-01" = { wave = 2 }, "web-02" = { wave = 2 } }'
#
# Wave 1 follows ECR pushes; each host of wave N > 1 gets a rule on the results bus that
# delivers wave N - 1's deployment results to its queue (set [fleet] wave, promote_after and
# bake_minutes in its config; the config snippet carries the wave and the bus).
# 50 hosts are 50 entries in `hosts`; adding or removing a host touches only its own resources.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "Region of the ECR repositories and the queues."
  type        = string
  default     = "eu-west-2"
}

variable "hosts" {
  description = "Host names, each with its fleet wave; each gets its own queue."
  type        = map(object({ wave = number }))
  default = {
    "web-01" = { wave = 1 }
    "web-02" = { wave = 2 }
  }
}

variable "repositories" {
  description = "ECR repositories every host follows."
  type        = list(string)
  default     = ["shop/web", "shop/api"]
}

variable "results_bus_name" {
  description = "Name of the fleet's results bus (created here)."
  type        = string
  default     = "ecr-deployd-results"
}

variable "roles_anywhere_trust_anchor_arn" {
  description = "IAM Roles Anywhere trust anchor for the hosts' certificates (empty: attach the policies yourself)."
  type        = string
  default     = ""
}

resource "aws_cloudwatch_event_bus" "results" {
  name = var.results_bus_name
}

module "host" {
  source   = "../../modules/ecr-deployd-host"
  for_each = var.hosts

  host_name                       = each.key
  wave                            = each.value.wave
  results_bus_name                = aws_cloudwatch_event_bus.results.name
  repositories                    = var.repositories
  roles_anywhere_trust_anchor_arn = var.roles_anywhere_trust_anchor_arn
}

output "config_snippets" {
  description = "Per host: paste into that host's /etc/ecr-deployd/config.toml"
  value       = { for h, m in module.host : h => m.config_snippet }
}

output "agent_policy_arns" {
  description = "Per host: the policies to attach to the host's principal"
  value       = { for h, m in module.host : h => compact([m.agent_policy_arn, m.results_policy_arn]) }
}
