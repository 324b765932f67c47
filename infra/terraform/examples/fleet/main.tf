# A fleet: one queue, rule and policy set per host, from one list.
#
#   terraform init && terraform apply -var 'hosts=["web-01","web-02"]'
#
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
  description = "Host names; each gets its own queue."
  type        = list(string)
  default     = ["web-01", "web-02"]
}

variable "repositories" {
  description = "ECR repositories every host follows."
  type        = list(string)
  default     = ["shop/web", "shop/api"]
}

variable "roles_anywhere_trust_anchor_arn" {
  description = "IAM Roles Anywhere trust anchor for the hosts' certificates (empty: attach the policies yourself)."
  type        = string
  default     = ""
}

module "host" {
  source   = "../../modules/ecr-deployd-host"
  for_each = toset(var.hosts)

  host_name                       = each.key
  repositories                    = var.repositories
  roles_anywhere_trust_anchor_arn = var.roles_anywhere_trust_anchor_arn
}

output "config_snippets" {
  description = "Per host: paste into that host's /etc/ecr-deployd/config.toml"
  value       = { for h, m in module.host : h => m.config_snippet }
}

output "agent_policy_arns" {
  description = "Per host: the policy to attach to the host's principal"
  value       = { for h, m in module.host : h => m.agent_policy_arn }
}
