"""The local node: plays the kubelet for pods bound to this machine (issue 5)."""
