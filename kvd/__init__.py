"""kvd: KubeVirt-compatible virtual machines on Kubernetes, in Python."""
