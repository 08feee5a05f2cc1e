"""kvd controller (cluster-wide, leader-elected): VMI → launcher pod, VM run strategies, VMIRS."""
