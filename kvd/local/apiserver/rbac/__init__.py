"""RBAC for the local API server, as kube-apiserver's `--authorization-mode=RBAC` has it.

The server serves `rbac.authorization.k8s.io/v1` Roles, ClusterRoles, RoleBindings and
ClusterRoleBindings (`registry`, validated by `kinds.rbac`), and authorizes every user but
`system:masters` by them:

- `index`: the rule resolver. Roles and bindings indexed by subject in memory, following the
  store's events; `policy.Authorizer` asks it for a user's rules in a namespace.
- `bootstrap`: kube's default roles and bindings (cluster-admin, admin/edit/view, discovery,
  basic-user, public-info-viewer, auth-delegator), created and reconciled at every start.
- `aggregation`: the ClusterRole aggregation controller (admin/edit/view gather the rules of
  the ClusterRoles labelled aggregate-to-admin|edit|view).
- `escalation`: the admission plugin that refuses a role or binding granting more than its
  author holds (unless they may `escalate` or `bind`), and roleRef changes.
- `impersonation`: `Impersonate-*` headers, authorized with the verb `impersonate`.
- `subjects`: service-account users and the groups every authenticated user has; the
  authentication side finishes its users with `subjects.authenticated_groups`.
"""
