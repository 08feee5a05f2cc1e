"""The local API server's HTTP side: routing, authentication, bodies, watch streams.

Every request is authenticated (`auth`), may then run as the user it impersonates, and is
authorized for that user by RBAC (`rbac`: system:masters before any rule is read, everyone else
by the stored roles and bindings).

One asyncio event loop serves everything (aiohttp). Store calls are short synchronous SQLite
operations made on the loop thread, so requests are naturally serialised and a watch never
misses a write made between its list and its start. What could hold the loop long is kept off
it: a body is parsed within bounds, and in a worker thread when it is large (`documents`).
`APIServer.app()` builds the aiohttp application; `serve()` runs it on loopback (see `kvd local
apiserver`).

Every request gets an id (`audit.AUDIT_ID`, answered in the `Audit-Id` header). A failure the
server did not foresee is answered with a short 500 naming that id, and logged once under it.
"""

from __future__ import annotations

import asyncio
import json
import traceback
import unicodedata
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from kvd import logs
from kvd.local.apiserver import (
    accounting,
    admission,
    apply,
    audit,
    auth,
    binding,
    clientcerts,
    crds,
    decoding,
    deletion,
    discovery,
    documents,
    encoding,
    errors,
    kinds,
    kubelet,
    namespace_controller,
    namespaces,
    openapi,
    pods,
    policy,
    selectors,
    serviceaccounts,
    tables,
    tls,
)
from kvd.local.apiserver.aggregation import aggregator
from kvd.local.apiserver.aggregation import validation as apiservices
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import PATCH_TYPES, FieldValidation, Objects, Target
from kvd.local.apiserver.rbac import bootstrap, escalation, impersonation
from kvd.local.apiserver.rbac.aggregation import AggregationController
from kvd.local.apiserver.rbac.escalation import RBACEscalation
from kvd.local.apiserver.rbac.index import RBACIndex
from kvd.local.apiserver.registry import VIRTUAL, Registry
from kvd.local.apiserver.serviceaccounts import admission as sa_admission
from kvd.local.apiserver.serviceaccounts import controller as sa_controller
from kvd.local.apiserver.serviceaccounts import discovery as sa_discovery
from kvd.local.apiserver.store import Store
from kvd.local.apiserver.watchstream import WatchStream

log = logs.get_logger(__name__)

MAX_BODY = documents.MAX_BYTES  # kube-apiserver's limit for a request body
USER = web.RequestKey("kvd.user", auth.User)  # whom the request acts as
CALLER = web.RequestKey("kvd.caller", auth.User)  # who authenticated (differs when impersonating)
# Static paths kube-apiserver answers whatever the method: health checks (its healthz mux) and
# the group lists (the aggregator's handlers). The others are go-restful routes: 405.
ANY_METHOD_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/apis"})
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class LogSource(Protocol):
    """Where `pods/log` comes from: the local node's API (`kubelet.Kubelet`)."""

    async def logs(
        self, pod: dict[str, Any], query: Mapping[str, str]
    ) -> AsyncGenerator[bytes, None]:
        """Opens the log (APIError for a refusal) and returns its chunks; `query` is the
        request's (container, follow, tailLines, previous, limitBytes, …)."""
        ...


class APIServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        history: int = 100_000,
        kubelet_socket: Path | None = None,
        audit_log: Path | None = None,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.store = Store(data_dir / "state.db", history=history)
        self.registry = Registry()
        self.certificates = tls.Certificates(data_dir)
        self.service_accounts = serviceaccounts.ServiceAccounts(data_dir, self.store)
        self.rbac = RBACIndex(self.store)
        self.authorizer = policy.Authorizer(self.rbac)
        # The admission chain, in kube-apiserver's order: built-in defaults and create
        # strategies (RBAC's escalation guard is its storage's), the ServiceAccount plugin,
        # built-in validation, then webhooks.
        self.objects = Objects(
            self.store,
            self.registry,
            admission=(
                pods.PodDefaults(),
                sa_admission.ServiceAccountAdmission(self.store, self._default_account),
                namespaces.NamespaceStrategy(),
                RBACEscalation(self.rbac, self.authorizer),
                crds.CRDValidation(),
                apiservices.APIServiceValidation(),
                admission.KubeVirtAdmission(),
            ),
            kinds=kinds.BuiltinKinds(openapi.load),
        )
        self.deleter = deletion.Deleter(self.objects)
        self.collector = deletion.Collector(self.deleter)
        self.namespace_controller = namespace_controller.NamespaceController(self.deleter)
        self.crds = crds.CRDs(self.objects)
        self.sa_controller = sa_controller.ServiceAccountsController(
            self.objects, self.certificates.ca_cert.read_bytes()
        )
        self.tokens = auth.Tokens(
            data_dir,
            audiences=serviceaccounts.API_AUDIENCES,
            authenticators=(self.service_accounts.authenticator,),
        )
        # the local node serves logs and exec there (`kvd local apiserver --kubelet-socket`)
        self.kubelet = kubelet.Kubelet(kubelet_socket or data_dir / "node" / "kubelet.sock")
        self.log_source: LogSource = self.kubelet
        self.accounting = accounting.Accounting()
        self.audit = audit.AuditLog(audit_log, user=USER, caller=CALLER) if audit_log else None
        self.openapi = openapi.OpenAPIService(self.registry, openapi.load)
        self._tasks: list[asyncio.Task[None]] = []
        self.crds.load()
        self._ensure_namespaces()
        self.aggregation = AggregationController(self.objects)
        bootstrap.ensure(self.objects)
        self.aggregation.settle()
        # API aggregation (APIServices); `aggregation` above is ClusterRole aggregation
        self.aggregator = aggregator.Aggregator(self.objects, self.certificates)
        self.aggregator.publish()

    def _ensure_namespaces(self) -> None:
        ns = self.registry.get("", "namespaces")
        assert ns is not None
        for name in DEFAULT_NAMESPACES:
            if self.store.get(ns.key, "", name) is None:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                self.objects.create(
                    Target(ns, "v1", ""),
                    body,
                    validation="Strict",
                    dry_run=False,
                    manager="kube-apiserver",
                )
        items, _ = self.store.list(ns.key, None)
        for namespace in items:  # before the first request, not on the controller's first pass
            self.sa_controller.sync(namespace["metadata"]["name"])

    def _default_account(self, namespace: str) -> None:
        """Admission's call when a pod comes before the controller made `default` (the
        controller exists by the time any pod is admitted)."""
        self.sa_controller.sync(namespace)

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                audit.id_middleware,
                *([self.audit.middleware] if self.audit else []),
                self.accounting.middleware,
                self._errors_middleware,
                self._auth_middleware,
            ],
            client_max_size=MAX_BODY,
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(audit.send_id)
        if self.audit:
            app.on_response_prepare.append(self.audit.on_response_prepare)
        app.on_startup.append(self._start_background)
        app.on_cleanup.append(self._stop_background)
        return app

    async def _start_background(self, _app: web.Application) -> None:
        for name, run in (
            ("garbage_collector", self.collector.run),
            ("namespace_controller", self.namespace_controller.run),
            ("crds", self.crds.run),
            ("serviceaccounts", self.sa_controller.run),
            ("clusterrole_aggregation", self.aggregation.run),
            ("apiservice_availability", self.aggregator.run),
        ):
            self._tasks.append(asyncio.create_task(_keep_running(name, run)))

    async def _stop_background(self, _app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.kubelet.close()
        await self.aggregator.close()
        self.rbac.close()
        decoding.PARSER.close()
        self.store.close()
        if self.audit:
            self.audit.close()

    # --- middleware --------------------------------------------------------------------------

    @web.middleware
    async def _errors_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except APIError as exc:
            return _status_response(request, exc)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(request, errors.too_large(f"limit is {MAX_BODY}"))
        except web.HTTPException:
            raise
        except Exception as exc:
            audit_id = request.get(audit.AUDIT_ID, "")
            _log_failure(request, audit_id, exc)
            return _status_response(request, errors.internal_error(audit_id))

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in auth.ANONYMOUS_PATHS and request.method == "GET":
            return await handler(request)
        user = clientcerts.authenticate(request) or self.tokens.authenticate(
            request.headers.get("Authorization")
        )
        if user is None:
            raise errors.unauthorized()
        request[CALLER] = user
        user = self._impersonated(request, user)
        request[USER] = user
        if self.authorizer.privileged(user):
            return await handler(request)
        asked = policy.attributes(request.method, request.path, request.query)
        decision = self.authorizer.decide(user, asked)
        if not decision.allowed:
            raise policy.forbidden(user, asked, decision.reason)
        with escalation.acting_as(user, asked):  # whose writes RBAC's escalation guard checks
            return await handler(request)

    def _impersonated(self, request: web.Request, user: auth.User) -> auth.User:
        """The user the request runs as: the authenticated one, or whom it impersonates
        (`Impersonate-*` headers, each authorized for the authenticated user: `rbac`)."""
        return impersonation.impersonate(request.headers, user, self.authorizer) or user

    # --- routing -----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if request.method == "GET" and path == "/metrics":
            return self.accounting.response()
        if path in sa_discovery.PATHS:
            if request.method != "GET":
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            return sa_discovery.respond(path, self.service_accounts.key)
        if parts[:1] == ["openapi"]:
            if request.method != "GET":
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            return self.openapi.handle(request, parts)
        if len(parts) >= 3 and parts[0] == "apis":
            apiservice = self.aggregator.apiservice(parts[1], parts[2])
            if apiservice is not None:  # authenticated and authorized above, as kube's chain
                return await self.aggregator.handle(request, apiservice, request[USER])
        static = self._static(path, parts, request)
        if static is not None:
            if isinstance(static, APIError):
                raise static
            any_method = path in ANY_METHOD_PATHS or (len(parts) == 2 and parts[0] == "apis")
            if request.method != "GET" and not any_method:
                raise errors.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            return _json(static)
        if len(parts) >= 2 and parts[0] == "api":
            return await self._resource(request, "", parts[1], parts[2:])
        if len(parts) >= 3 and parts[0] == "apis":
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def _static(self, path: str, parts: list[str], request: web.Request) -> Any:
        if path in ("/healthz", "/livez", "/readyz"):
            return "ok"
        if path == "/version":
            return discovery.version()
        if path == "/api":
            return discovery.api_versions(request.host)
        if path == "/apis":
            return self.aggregator.group_list(discovery.api_group_list(self.registry))
        if len(parts) == 2 and parts[0] == "apis":
            return (
                discovery.api_group(self.registry, parts[1])
                or self.aggregator.api_group(parts[1])
                or _not_found()
            )
        if len(parts) == 2 and parts[0] == "api":
            return discovery.resource_list(self.registry, "", parts[1]) or _not_found()
        if len(parts) == 3 and parts[0] == "apis":
            return discovery.resource_list(self.registry, parts[1], parts[2]) or _not_found()
        return None

    def _target(self, group: str, version: str, rest: list[str]) -> tuple[Target, bool]:
        """(target, is_collection) for the segments after /api/v1 or /apis/g/v."""
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.get(group, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest:
            raise _not_found()
        resource = self.registry.get(group, rest[0])
        if resource is None or resource.version(version) is None:
            raise _not_found()
        if resource.namespaced and not namespace and len(rest) > 1:
            raise _not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3:
            raise _not_found()
        version_def = resource.version(version)
        assert version_def is not None
        if sub and sub not in version_def.subresources:
            raise _not_found()
        return Target(resource, version, namespace, name, sub), len(rest) == 1

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        t, collection = self._target(group, version, rest)
        method = request.method
        protobuf = decoding.speaks_protobuf(t)
        request[encoding.JSON_ONLY] = not protobuf
        delete_options = await decoding.options(request) if method == "DELETE" else {}
        written = decoding.write_options(request, body_dry_run=delete_options.get("dryRun"))
        dry_run, validation = written.dry_run, written.validation
        if t.resource.plural in VIRTUAL:
            if method != "POST" or not collection:
                raise errors.method_not_allowed(f"{t.resource.plural} only supports create")
            review = policy.review(
                t.resource.plural,
                await decoding.body(request, protobuf=protobuf),
                self.tokens,
                request[USER],
                self.authorizer,
                namespace=t.namespace,
            )
            review.update(apiVersion=t.resource.api_version(t.version), kind=t.resource.kind)
            return _respond(request, review, status=201)
        if collection:
            return await self._collection(request, t, validation, dry_run, delete_options)
        if t.subresource == "token":
            return await self._token_request(request, t)
        if t.subresource in ("log", "exec", "binding", "scale"):
            return await self._subresource(request, t, validation, dry_run)
        if method == "GET":
            obj = self.objects.get(t)
            if decoding.wants_table(request) and not t.subresource:
                # `kubectl get pod NAME` asks for a one-row table, as for a list
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                include = request.query.get("includeObject", "Metadata")
                return _json(
                    tables.table(t.resource, t.version, [obj], include=include, list_meta=meta)
                )
            return _respond(request, obj)
        if method == "PUT":
            result = self.objects.update(
                t,
                await decoding.body(request, protobuf=protobuf),
                validation=validation,
                dry_run=dry_run,
                manager=_manager(request, "UpdateOptions"),
            )
        elif method == "PATCH":
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise errors.unsupported_media_type(content_type, _patch_types(t))
            force = _patch_options(request, content_type)
            raw = await decoding.patch(request, content_type)
            result = self.objects.patch(
                t,
                raw,
                content_type,
                validation=validation,
                dry_run=dry_run,
                manager=_manager(request, "PatchOptions"),
                force=force,
            )
        elif method == "DELETE":
            obj = self.deleter.delete(t, delete_options, dry_run=dry_run)
            return _respond(request, obj)
        else:
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        self.crds.after_write(t, result.object, dry_run=dry_run)
        status = 201 if result.created else 200  # an apply that created the object
        return _respond(request, result.object, status=status, warnings=result.warnings)

    async def _collection(
        self,
        request: web.Request,
        t: Target,
        validation: FieldValidation,
        dry_run: bool,
        delete_options: dict[str, Any],
    ) -> web.StreamResponse:
        method = request.method
        if method == "GET":
            if request.query.get("watch") in ("1", "true", "True"):
                return await self._watch(request, t)
            return _respond(request, self._list(t, request))
        if method == "POST":
            result = self.objects.create(
                t,
                await decoding.body(request, protobuf=decoding.speaks_protobuf(t)),
                validation=validation,
                dry_run=dry_run,
                manager=_manager(request, "CreateOptions"),
            )
            self.crds.after_write(t, result.object, dry_run=dry_run)
            return _respond(request, result.object, status=201, warnings=result.warnings)
        if method == "DELETE":
            return _respond(
                request,
                self._delete_collection(t, request, delete_options, dry_run),
            )
        raise errors.method_not_allowed(
            "the server does not allow this method on the requested resource"
        )

    # --- list and watch ------------------------------------------------------------------------

    def _selected(self, t: Target, request: web.Request) -> Callable[[dict[str, Any]], bool]:
        q = request.query
        try:
            labels = selectors.parse_label_selector(q.get("labelSelector", ""))
            fields = selectors.parse_field_selector(q.get("fieldSelector", ""))
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        supported = {"metadata.name", "metadata.namespace", *t.resource.field_labels}
        for f in fields.fields:
            if f not in supported:
                raise errors.bad_request(
                    f'"{f}" is not a known field selector: only "{", ".join(sorted(supported))}"'
                )

        def get_field(obj: dict[str, Any]) -> Callable[[str], str | None]:
            def get(label: str) -> str | None:
                path = {
                    "metadata.name": ("metadata", "name"),
                    "metadata.namespace": ("metadata", "namespace"),
                }.get(label) or t.resource.field_labels[label]
                node: Any = obj
                for part in path:
                    node = node.get(part) if isinstance(node, dict) else None
                if node is None:
                    return ""
                return str(node).lower() if isinstance(node, bool) else str(node)

            return get

        return lambda obj: (
            labels.matches((obj.get("metadata") or {}).get("labels") or {})
            and fields.matches(get_field(obj))
        )

    def _list(self, t: Target, request: web.Request) -> dict[str, Any]:
        q = request.query
        items, revision = self.store.list(t.resource.key, t.namespace or None)
        selected = self._selected(t, request)
        items = [self.objects.present(t, o) for o in items if selected(o)]
        start = decoding.decode_continue(q.get("continue"))
        if start is not None:
            revision = start[0]
            items = [o for o in items if decoding.sort_key(o) > start[1]]
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        limit = decoding.integer(q, "limit") if q.get("limit") else 0
        if limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            list_meta["continue"] = decoding.encode_continue(revision, decoding.sort_key(items[-1]))
            list_meta["remainingItemCount"] = rest
        if decoding.wants_table(request):
            return tables.table(
                t.resource,
                t.version,
                items,
                include=q.get("includeObject", "Metadata"),
                list_meta=list_meta,
            )
        return {
            "kind": t.resource.list_kind,
            "apiVersion": t.resource.api_version(t.version),
            "metadata": list_meta,
            "items": items,
        }

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        table = decoding.wants_table(request)
        chosen = encoding.negotiate(
            request.headers.get("Accept", ""),
            protobuf=not table and decoding.speaks_protobuf(t),
        )
        if chosen is None:
            raise encoding.not_acceptable()
        stream = WatchStream(
            self.objects,
            t,
            request.query,
            self._selected(t, request),
            table=table,
            protobuf=chosen == "protobuf",
        )
        return await stream.serve(request)

    # --- the rest ------------------------------------------------------------------------------

    def _delete_collection(
        self, t: Target, request: web.Request, options: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        items, _ = self.store.list(t.resource.key, t.namespace or None)
        selected = self._selected(t, request)
        for obj in items:
            if selected(obj):
                one = Target(
                    t.resource,
                    t.version,
                    obj["metadata"].get("namespace", ""),
                    obj["metadata"]["name"],
                )
                try:
                    self.deleter.delete(one, options, dry_run=dry_run)
                except APIError as exc:
                    if exc.code != 404:
                        raise
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    async def _subresource(
        self, request: web.Request, t: Target, validation: FieldValidation, dry_run: bool
    ) -> web.StreamResponse:
        """The subresources that are not a view of the object itself."""
        method = request.method
        if t.subresource == "log":
            return await self._logs(request, t)
        if t.subresource == "exec":
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed("exec only supports GET and POST")
            return await self.kubelet.exec(request, self._pod(t))
        if t.subresource == "binding":
            if method != "POST":
                raise errors.method_not_allowed("binding only supports create")
            status = binding.bind(
                self.objects,
                t,
                await decoding.body(request, protobuf=decoding.speaks_protobuf(t)),
                dry_run=dry_run,
            )
            return _respond(request, status, status=201)
        return _respond(request, await self._scale(request, t, validation, dry_run))

    async def _token_request(self, request: web.Request, t: Target) -> web.StreamResponse:
        """`POST …/serviceaccounts/NAME/token`: a TokenRequest (`serviceaccounts.tokenrequest`);
        kubectl sends it in protobuf."""
        if request.method != "POST":
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        body = await decoding.body(request, protobuf=True)
        answer = self.service_accounts.token_request(t.namespace, t.name, body)
        return _respond(request, answer, status=201)

    def _pod(self, t: Target) -> dict[str, Any]:
        """The pod a subresource request names (404 when there is none)."""
        return self.objects.get(Target(t.resource, t.version, t.namespace, t.name))

    async def _logs(self, request: web.Request, t: Target) -> web.StreamResponse:
        chunks = await self.log_source.logs(self._pod(t), request.query)
        return await kubelet.stream(request, chunks)

    async def _scale(
        self, request: web.Request, t: Target, validation: FieldValidation, dry_run: bool
    ) -> dict[str, Any]:
        if request.method in ("PUT", "PATCH"):
            await decoding.patch(request, request.content_type)  # bounds, before crds reads it
        return await crds.scale(
            self.objects, t, request.method, request, validation=validation, dry_run=dry_run
        )


# --- helpers -----------------------------------------------------------------------------------


async def _keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """A background loop of the server, restarted (after a pause) whenever it fails."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background_task_restarting", task=name)
            await asyncio.sleep(1.0)


def warning_headers(warnings: list[str]) -> list[str]:
    """One `Warning: 299 - "text"` value per distinct warning, as kube-apiserver sends them
    (RFC 7234 warn-text: quotes and backslashes escaped). A text with a control character
    cannot travel in a header; kube drops it, and so does this."""
    headers: list[str] = []
    for text in dict.fromkeys(warnings):
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            continue
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        headers.append(f'299 - "{escaped}"')
    return headers


def _manager(request: web.Request, options_kind: str) -> str:
    """Who a write is recorded as in managedFields (422 for a `fieldManager` kube refuses)."""
    field_manager = request.query.get("fieldManager")
    apply.check_field_manager(field_manager, options_kind)
    return apply.manager_name(field_manager, request.headers.get("User-Agent"))


def _patch_options(request: web.Request, content_type: str) -> bool:
    """`force`, checked as kube's ValidatePatchOptions does: apply only, and apply needs a
    `fieldManager`."""
    q = request.query
    causes = []
    if content_type == apply.APPLY_PATCH and not q.get("fieldManager"):
        message = "Required value: is required for apply patch"
        causes.append(errors.Cause("FieldValueRequired", message, "fieldManager"))
    elif content_type != apply.APPLY_PATCH and "force" in q:
        message = "Forbidden: may not be specified for non-apply patch"
        causes.append(errors.Cause("FieldValueForbidden", message, "force"))
    if causes:
        raise errors.invalid("meta.k8s.io", "PatchOptions", "", causes)
    force = q.get("force", "false")
    if force not in ("true", "false", "1", "0", "True", "False"):
        raise errors.bad_request(f'force: invalid value "{force}": must be true or false')
    return force in ("true", "1", "True")


def _log_failure(request: web.Request, audit_id: str, exc: Exception) -> None:
    """One line for an unforeseen failure (the traceback, clipped, only at debug level)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    log.error(
        "request_failed",
        audit_id=audit_id,
        method=request.method,
        path=request.path,
        error_type=type(exc).__name__,
        error=_clip(str(exc), 500),
        where=where,
    )
    log.debug(
        "request_failed_traceback",
        audit_id=audit_id,
        traceback=_clip("".join(traceback.format_exception(exc, limit=-12)), 8000),
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _patch_types(t: Target) -> tuple[str, ...]:
    """The patch media types the target reads, as kube-apiserver lists them in a 415."""
    if t.resource.crd_name is not None:
        return tuple(p for p in PATCH_TYPES if "strategic" not in p)
    return tuple(PATCH_TYPES)


def _not_found() -> APIError:
    return APIError(404, "NotFound", "the server could not find the requested resource")


def _status_response(request: web.Request, exc: APIError) -> web.Response:
    retry = exc.retry_after_seconds
    headers = [("Retry-After", str(retry))] if retry else None
    return encoding.respond(request, exc.status(), status=exc.code, headers=headers, strict=False)


def _respond(
    request: web.Request, body: Any, *, status: int = 200, warnings: list[str] | None = None
) -> web.Response:
    """An object, list or Status, in JSON or protobuf as the request's Accept prefers."""
    headers = [("Warning", header) for header in warning_headers(warnings or [])]
    return encoding.respond(request, body, status=status, headers=headers)


def _json(body: Any) -> web.Response:
    """Discovery documents, health answers and Tables: JSON (or text) whatever the Accept."""
    if isinstance(body, APIError):
        raise body
    if isinstance(body, str):
        return web.Response(text=body, content_type="text/plain")
    return web.Response(text=json.dumps(body), content_type="application/json")
