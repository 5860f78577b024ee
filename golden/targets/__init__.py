"""Where a build machine comes from: ``local`` (mmdebstrap + sshd on loopback) or ``amazon-ebs``."""
