"""The only package that imports `kubernetes`: informers, work queue, expectations, leases."""
