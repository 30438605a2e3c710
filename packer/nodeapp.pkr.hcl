# Golden AMI of the app server: the source AMI + playbooks/app_server.yml, cleaned and
# checked inside before the image is taken. One template for dev and prod: the bake job
# (`nodestack bake --env dev --env prod`) runs it once per environment with that
# environment's variables (packer/vars/<env>.pkrvars.hcl) and reads AMI ids from the
# manifest. The playbook's variables reach Ansible as a JSON file the job writes
# (playbook_vars_file); local mode sets the endpoint, source AMI and build container's port.

variable "env" {
  type        = string
  description = "dev or prod: picks the AMI name, tags and the playbook's variables."
}

# From the naming map (roles/stack/vars/main.yml) and the inventory: the bake job passes them.
variable "app_name" {
  type        = string
  description = "The app's name (the inventory's stack_app_name): names the AMI."
}

variable "project" {
  type        = string
  description = "The Project tag's value (the naming map's stack__project)."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ec2_endpoint" {
  type        = string
  default     = ""
  description = "EC2 endpoint URL; empty for AWS itself, the local endpoint in local mode."
}

variable "source_ami" {
  type        = string
  default     = ""
  description = "Exact source AMI id; empty: the newest AMI matching source_ami_owners + source_ami_name."
}

variable "source_ami_owners" {
  type    = list(string)
  default = ["136693071363"] # Debian's official account
}

variable "source_ami_name" {
  type    = string
  default = "debian-12-amd64-*"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "volume_size_gb" {
  type        = number
  default     = 16
  description = "Root volume size (GiB), encrypted gp3, deleted with the build instance."
}

variable "ssh_username" {
  type    = string
  default = "admin" # Debian's AMIs
}

variable "ssh_host" {
  type        = string
  default     = ""
  description = "Connect here instead of the instance's address; local mode: 127.0.0.1 only."
}

variable "build_known_hosts" {
  type        = string
  description = "known_hosts file of the build host: the job fills it (local mode), else it is read from the instance's console output first."
}

# Packer 1.6.6 cannot tag a security group it makes, and opens SSH to 0.0.0.0/0 unless told
# otherwise: the build instance goes only into the bake's own group (nodestack.bake.build_group),
# made tagged with the app and the run, SSH from the runner's network only, deleted after the build.
variable "security_group_id" {
  type        = string
  description = "The bake's security group of the build instance: with it Packer makes none of its own."
  validation {
    condition     = substr(var.security_group_id, 0, 3) == "sg-" && length(var.security_group_id) > 3
    error_message = "The security_group_id value must be the bake's group (sg-...): Packer's own would be untagged."
  }
}

variable "ssh_interface" {
  type        = string
  default     = "public_ip"
  description = "public_ip, or private_ip when the runner is inside the build subnet's VPC."
  validation {
    condition     = contains(["public_ip", "private_ip"], var.ssh_interface)
    error_message = "The ssh_interface value must be public_ip or private_ip."
  }
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty: the default VPC's. Set it in packer/vars/<env>.pkrvars.hcl (a quoted id): the bake reads it there to make the build's security group in its VPC."
}

variable "ssh_port" {
  type    = number
  default = 22
}

variable "ssh_keypair_name" {
  type        = string
  default     = ""
  description = "Existing key pair (local mode: the job's one-time key); empty: Packer makes a temporary one."
}

variable "ssh_private_key_file" {
  type        = string
  description = "The job's one-time key, read by path: never passed on a command line."
}

variable "build_timestamp" {
  type        = string
  description = "UTC, yyyymmddHHMMSS; part of the AMI name."
}

variable "git_revision" {
  type        = string
  description = "Commit of this repository the image was built from."
}

variable "nodejs_version" {
  type        = string
  description = "Exact version, or auto: the app's own declaration picks it (the image checks report it)."
}

variable "node_version_report" {
  type        = string
  default     = ""
  description = "With nodejs_version auto: where the image checks write the version the app runs."
}

variable "app_revision" {
  type = string
}

variable "app_commit" {
  type        = string
  description = "The full commit id app_revision names, resolved by the bake's preflight and checked out by the build: tag AppCommit."
  validation {
    condition     = contains([40, 64], length(var.app_commit)) && trim(var.app_commit, "0123456789abcdef") == ""
    error_message = "The app_commit value must be a full commit id (the bake resolves app_revision to it)."
  }
}

# The app as the roles set it up (the bake job reads them from the same settings): what the
# image checks and finalize look for.
# The CloudWatch agent as roles/aws_agents leaves it: "" (off), configured (its configuration
# only: the local cloud) or installed; and the log group it ships the app's journal to.
variable "expect_agents" {
  type    = string
  default = ""
}

variable "expect_log_group" {
  type    = string
  default = ""
}

variable "app_service" {
  type    = string
  default = "nodeapp"
}

variable "app_user" {
  type    = string
  default = "nodeapp"
}

variable "app_dir" {
  type    = string
  default = "/srv/nodeapp/app"
}

variable "app_port" {
  type    = number
  default = 3000
}

variable "app_health_path" {
  type    = string
  default = "/health"
}

variable "app_health_status" {
  type    = number
  default = 200
}

variable "playbook_vars_file" {
  type        = string
  description = "JSON file of variables for playbooks/app_server.yml (the job writes it 0600, deletes it after)."
}

variable "vault_vars_file" {
  type        = string
  default     = ""
  description = "Vault-encrypted variables (inventories/<env>/vault.yml); Ansible decrypts them (ANSIBLE_VAULT_PASSWORD_FILE)."
}

variable "manifest_path" {
  type = string
}

variable "python" {
  type        = string
  default     = "python3"
  description = "Python with pytest-testinfra, for the image checks (the bake job passes its own)."
}

# The bake run's own tags on its build instance (nodestack.bake.run_owner): the next bake of the
# environment terminates the instance of a run that was killed, and only such a one.
variable "bake_run" {
  type        = string
  default     = ""
  description = "The run's build name (its key pair's, locally its container's): tag BakeRun."
}

variable "bake_host" {
  type        = string
  default     = ""
  description = "The machine and environment lock of the run: tag BakeHost."
}

variable "bake_expires" {
  type        = string
  default     = ""
  description = "UTC time after which the run is over in any case (its timeout and a margin): tag BakeExpires."
}

locals {
  ami_name = "${var.app_name}-${var.env}-${var.build_timestamp}"
  origin_tags = {
    Name           = local.ami_name
    Project        = var.project
    App            = var.app_name
    Environment    = var.env
    BuildTimestamp = var.build_timestamp
    GitRevision    = var.git_revision
    SourceAmi      = "{{ .SourceAMI }}"
    SourceAmiName  = "{{ .SourceAMIName }}"
    NodejsVersion  = var.nodejs_version
    AppRevision    = var.app_revision
    AppCommit      = var.app_commit
    validated      = "false" # only the bake job sets "true", after validation
  }
}

source "amazon-ebs" "app" {
  region                 = var.region
  custom_endpoint_ec2    = var.ec2_endpoint
  skip_region_validation = var.ec2_endpoint != ""

  source_ami = var.source_ami
  source_ami_filter {
    filters = var.source_ami != "" ? { "image-id" = var.source_ami } : {
      name                = var.source_ami_name
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = var.source_ami_owners
    most_recent = true
  }

  instance_type = var.instance_type
  # IMDSv2: Packer 1.6.6 has no metadata_options; the bake job requires tokens on the build
  # instance (ModifyInstanceMetadataOptions) as soon as it appears and fails the bake otherwise.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }

  subnet_id = var.subnet_id
  # the bake's group, in the subnet's VPC (else the default VPC), SSH from the runner's network only
  security_group_id = var.security_group_id

  communicator         = "ssh"
  ssh_interface        = var.ssh_interface
  ssh_username         = var.ssh_username
  ssh_host             = var.ssh_host
  ssh_port             = var.ssh_port
  ssh_keypair_name     = var.ssh_keypair_name
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "5m"

  # no ami_description: Packer 1.6.6 would set it before tagging the image (the bake sets it after)
  ami_name = local.ami_name
  tags     = local.origin_tags
  run_tags = merge(local.origin_tags, {
    Name        = "packer-build-${local.ami_name}"
    BakeRun     = var.bake_run
    BakeHost    = var.bake_host
    BakeExpires = var.bake_expires
  })
  # tagged in the launch call itself: the bake's deployer may launch only volumes of its app
  run_volume_tags = local.origin_tags
}

build {
  sources = ["source.amazon-ebs.app"]

  # The build host's SSH host keys, before anything talks to it: on AWS from the instance's
  # console output (cloud-init prints them); local mode: the job has written them already.
  provisioner "shell-local" {
    inline = ["test -s \"$KNOWN_HOSTS\" || \"$PYTHON\" -m nodestack.bake.host_keys \"$BUILD_INSTANCE_ID\" \"$BUILD_HOST\" \"$BUILD_PORT\" > \"$KNOWN_HOSTS\""]
    environment_vars = [
      "PYTHON=${var.python}",
      "KNOWN_HOSTS=${var.build_known_hosts}",
      "BUILD_INSTANCE_ID=${build.ID}",
      "BUILD_HOST=${build.Host}",
      "BUILD_PORT=${build.Port}",
      "AWS_REGION=${var.region}",
    ]
  }

  # This run carries the deploy key: it talks only to the host whose key is known. Packer
  # turns host key checking off (environment and inventory): the extra variable outranks both.
  provisioner "ansible" {
    playbook_file = "${path.root}/../playbooks/app_server.yml"
    user          = var.ssh_username
    use_proxy     = false
    use_sftp      = true
    extra_arguments = concat([
      "--become",
      "--ssh-common-args", "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=${var.build_known_hosts}",
      "--extra-vars", "{\"ansible_host_key_checking\": true}",
      "--extra-vars", "app_server_hosts=default",
      "--extra-vars", "@${var.playbook_vars_file}",
    ], var.vault_vars_file == "" ? [] : ["--extra-vars", "@${var.vault_vars_file}"])
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible.cfg",
      "ANSIBLE_ROLES_PATH=${path.root}/../roles",
      "ANSIBLE_FORCE_COLOR=0",
      "ANSIBLE_HOST_KEY_CHECKING=True",
    ]
  }

  # The image checks (packer/tests) from here over SSH while the build host runs.
  provisioner "shell-local" {
    script = "${path.root}/scripts/validate-build-host.sh"
    environment_vars = [
      "PYTHON=${var.python}",
      "BUILD_HOST=${build.Host}",
      "BUILD_PORT=${build.Port}",
      "BUILD_USER=${build.User}",
      # a path: the key itself on a command line would show in `ps` and Packer's log
      "BUILD_SSH_KEY_FILE=${var.ssh_private_key_file}",
      "BUILD_KNOWN_HOSTS=${var.build_known_hosts}",
      "AWS_REGION=${var.region}",
      "NODESTACK_EXPECT_NODE=${var.nodejs_version}",
      "NODESTACK_NODE_REPORT=${var.node_version_report}",
      "NODESTACK_EXPECT_REVISION=${var.app_revision}",
      "NODESTACK_APP_SERVICE=${var.app_service}",
      "NODESTACK_APP_USER=${var.app_user}",
      "NODESTACK_APP_DIR=${var.app_dir}",
      "NODESTACK_APP_PORT=${var.app_port}",
      "NODESTACK_APP_HEALTH_PATH=${var.app_health_path}",
      "NODESTACK_APP_HEALTH_STATUS=${var.app_health_status}",
      "NODESTACK_EXPECT_AGENTS=${var.expect_agents}",
      "NODESTACK_EXPECT_LOG_GROUP=${var.expect_log_group}",
    ]
  }

  # Clean and check the image from inside; a failure here fails the bake before any AMI.
  provisioner "shell" {
    script          = "${path.root}/scripts/finalize-image.sh"
    execute_command = "sudo env {{ .Vars }} bash '{{ .Path }}'"
    environment_vars = [
      "BUILD_USER=${var.ssh_username}",
      "APP_SERVICE=${var.app_service}",
    ]
  }

  post-processor "manifest" {
    output     = var.manifest_path
    strip_path = true
    custom_data = {
      env          = var.env
      ami_name     = local.ami_name
      app_revision = var.app_revision
    }
  }
}
