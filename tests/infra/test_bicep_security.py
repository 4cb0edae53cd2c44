"""Security settings of the Bicep in infra/ that must not quietly disappear.

The Bicep is parsed here (stdlib only) into declarations -- params, vars, resources,
modules, outputs -- with object bodies as nested dicts, so each assertion looks at one
property path of one resource rather than searching the text. Values are resolved
through vars, module params and module outputs across files, so e.g. the vault URI
app setting is checked to really be `vaultUri` of the deployed vault and a role
assignment to really be scoped to the deployed storage account.

Every check is a plain function taking a Project; the tests at the bottom run each
check against deliberately broken copies too, so no check can pass vacuously.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from shared.app.http_edge import MAX_BODY_BYTES

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

STORAGE = "Microsoft.Storage/storageAccounts"
TABLES = "Microsoft.Storage/storageAccounts/tableServices/tables"
TABLE_SERVICES = "Microsoft.Storage/storageAccounts/tableServices"
BLOB_SERVICES = "Microsoft.Storage/storageAccounts/blobServices"
CONTAINERS = "Microsoft.Storage/storageAccounts/blobServices/containers"
VAULTS = "Microsoft.KeyVault/vaults"
SITES = "Microsoft.Web/sites"
SITE_CONFIG = "Microsoft.Web/sites/config"
PLANS = "Microsoft.Web/serverfarms"
PUBLISHING_POLICIES = "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
COMPONENTS = "Microsoft.Insights/components"
WORKSPACES = "Microsoft.OperationalInsights/workspaces"
UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
RESOURCE_GROUPS = "Microsoft.Resources/resourceGroups"

KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

# The managed identity's roles: role definition id -> type of the resource it is scoped to.
APP_ROLES = {
    STORAGE_BLOB_DATA_OWNER: STORAGE,
    STORAGE_QUEUE_DATA_CONTRIBUTOR: STORAGE,
    STORAGE_TABLE_DATA_CONTRIBUTOR: STORAGE,
    MONITORING_METRICS_PUBLISHER: COMPONENTS,
    KEY_VAULT_CRYPTO_OFFICER: VAULTS,
}
# Granted only with keyCustody=vault-secret or keepSecretsRole (test_custody_and_network.py).
SECRET_CUSTODY_ROLES = {KEY_VAULT_SECRETS_OFFICER: VAULTS}


# =====================================================================================
# A small Bicep reader: enough of the grammar for infra/ (params, vars, resources,
# modules, outputs, decorators, objects, arrays; expressions are kept as text).
# =====================================================================================


class BicepSyntaxError(Exception):
    pass


@dataclass(frozen=True)
class Expr:
    """An expression kept as text (whitespace around line breaks collapsed)."""

    text: str


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output
    name: str
    file: str  # path relative to infra/
    type: str | None = None  # resource type (without @version), module path, param/output type
    value: Any = None  # param default, var value, output value, resource/module body
    existing: bool = False
    condition: str | None = None
    decorators: list[str] = field(default_factory=list)


def _scan_string(s: str, i: int) -> int:
    """Index just past the string literal starting at s[i] == "'"."""
    if s.startswith("'''", i):
        end = s.find("'''", i + 3)
        if end < 0:
            raise BicepSyntaxError("unterminated multi-line string")
        return end + 3
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            return i + 1
        if c == "\n":
            break
        if s.startswith("${", i):
            i = _scan_code_to_brace(s, i + 2)
            continue
        i += 1
    raise BicepSyntaxError("unterminated string")


def _scan_code_to_brace(s: str, i: int) -> int:
    """Index just past the '}' closing an interpolation that starts at s[i]."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c == "'":
            i = _scan_string(s, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    raise BicepSyntaxError("unterminated interpolation")


def strip_comments(s: str) -> str:
    """Blank out // and /* */ comments, keeping offsets (and so line numbers)."""
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] == "'":
            j = _scan_string(s, i)
            out.append(s[i:j])
            i = j
        elif s.startswith("//", i):
            j = s.find("\n", i)
            j = len(s) if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif s.startswith("/*", i):
            j = s.find("*/", i + 2)
            if j < 0:
                raise BicepSyntaxError("unterminated block comment")
            out.append(re.sub(r"[^\n]", " ", s[i : j + 2]))
            i = j + 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Reader:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        try:
            self.s = strip_comments(text)
        except BicepSyntaxError as exc:
            raise BicepSyntaxError(f"{file}: {exc}") from None
        self.i = 0

    # -- low level ------------------------------------------------------------------
    def error(self, msg: str) -> BicepSyntaxError:
        line = self.s.count("\n", 0, self.i) + 1
        return BicepSyntaxError(f"{self.file}:{line}: {msg}")

    def hws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r":
            self.i += 1

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def at(self, ch: str) -> bool:
        return self.s.startswith(ch, self.i)

    def expect(self, ch: str) -> None:
        self.hws()
        if not self.at(ch):
            raise self.error(f"expected {ch!r}")
        self.i += len(ch)

    def ident(self) -> str:
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.error("expected an identifier")
        self.i = m.end()
        return m.group()

    def string(self) -> str:
        if not self.at("'"):
            raise self.error("expected a string")
        try:
            j = _scan_string(self.s, self.i)
        except BicepSyntaxError as exc:
            raise self.error(str(exc)) from None
        raw = self.s[self.i : j]
        self.i = j
        return raw

    def balanced(self) -> str:
        """Text of a (...) group starting at the current position."""
        start = self.i
        depth = 0
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "'":
                self.string()
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth == 0:
                    self.i += 1
                    return self.s[start : self.i]
            self.i += 1
        raise self.error("unbalanced brackets")

    # -- values ---------------------------------------------------------------------
    def value(self) -> Any:
        self.hws()
        if self.at("{"):
            return self.obj()
        if self.at("[") and not re.match(r"\[\s*for\b", self.s[self.i :]):
            return self.arr()
        return self.expr()

    def expr(self) -> Expr:
        start = self.i
        depth = 0
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "'":
                self.string()
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and c in "\n,":
                break
            self.i += 1
        if depth:
            raise self.error("unbalanced brackets in expression")
        raw = self.s[start : self.i].strip()
        if not raw:
            raise self.error("expected a value")
        return Expr(re.sub(r"\s*\n\s*", " ", raw))

    def obj(self) -> dict[str, Any]:
        self.expect("{")
        items: dict[str, Any] = {}
        while True:
            self.ws()
            if self.i >= len(self.s):
                raise self.error("unterminated object")
            if self.at("}"):
                self.i += 1
                return items
            key = self.string()[1:-1] if self.at("'") else self.ident()
            self.expect(":")
            if key in items:
                raise self.error(f"duplicate property {key!r}")
            items[key] = self.value()
            self.hws()
            if self.at(","):
                self.i += 1

    def arr(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while True:
            self.ws()
            if self.i >= len(self.s):
                raise self.error("unterminated array")
            if self.at("]"):
                self.i += 1
                return items
            items.append(self.value())
            self.hws()
            if self.at(","):
                self.i += 1

    # -- statements -----------------------------------------------------------------
    def condition(self) -> str | None:
        self.hws()
        if re.match(r"if\s*\(", self.s[self.i :]):
            self.ident()
            self.hws()
            return self.balanced()[1:-1].strip()
        return None

    def body(self) -> dict[str, Any]:
        self.hws()
        if not self.at("{"):
            raise self.error("expected an object body")
        return self.obj()

    def end_of_statement(self) -> None:
        self.hws()
        if self.i < len(self.s) and not self.at("\n"):
            raise self.error(f"unexpected text {self.s[self.i : self.i + 20]!r}")

    def read(self) -> tuple[str | None, list[Decl]]:
        decls: list[Decl] = []
        target_scope = None
        while True:
            self.ws()
            if self.i >= len(self.s):
                return target_scope, decls
            decorators: list[str] = []
            while self.at("@"):
                start = self.i
                self.i += 1
                self.ident()
                self.hws()
                if self.at("("):
                    self.balanced()
                decorators.append(self.s[start : self.i])
                self.ws()
            if self.at("#"):  # #disable-next-line and friends
                self.i = self.s.find("\n", self.i) if "\n" in self.s[self.i :] else len(self.s)
                continue
            kw = self.ident()
            self.hws()
            if kw == "targetScope":
                self.expect("=")
                target_scope = self.value().text
            elif kw == "param":
                name = self.ident()
                self.hws()
                typ = self.ident()
                if self.at("?"):
                    self.i += 1
                self.hws()
                default = None
                if self.at("="):
                    self.i += 1
                    default = self.value()
                decls.append(Decl("param", name, self.file, typ, default, decorators=decorators))
            elif kw == "var":
                name = self.ident()
                self.expect("=")
                decls.append(
                    Decl("var", name, self.file, None, self.value(), decorators=decorators)
                )
            elif kw in ("resource", "module"):
                sym = self.ident()
                self.hws()
                target = self.string()[1:-1]
                self.hws()
                existing = False
                if kw == "resource" and re.match(r"existing\b", self.s[self.i :]):
                    self.ident()
                    existing = True
                self.expect("=")
                cond = self.condition()
                body = self.body()
                typ = target.split("@")[0] if kw == "resource" else target
                decls.append(Decl(kw, sym, self.file, typ, body, existing, cond, decorators))
            elif kw == "output":
                name = self.ident()
                self.hws()
                typ = self.ident()
                self.expect("=")
                decls.append(
                    Decl("output", name, self.file, typ, self.value(), decorators=decorators)
                )
            else:
                raise self.error(f"unsupported statement {kw!r}")
            self.end_of_statement()


# =====================================================================================
# The project: all files, and resolution of expressions across them.
# =====================================================================================


@dataclass(frozen=True)
class Literal:
    value: Any  # str | int | bool


@dataclass(frozen=True)
class Param:
    """A top-level (main.bicep) parameter: the value really comes from the deployer."""

    decl: Decl


@dataclass(frozen=True)
class Ref:
    """An expression that could not be reduced further, in the file it lives in."""

    file: str
    text: str


Resolved = Literal | Param | Ref | dict[str, Any] | list[Any]

_STRING_LITERAL = re.compile(r"^'((?:[^'\\$]|\\.|\$(?!\{))*)'$")


def literal_of(expr: Expr) -> Literal | None:
    text = expr.text
    m = _STRING_LITERAL.match(text)
    if m:
        return Literal(m.group(1).replace("\\'", "'"))
    if text in ("true", "false"):
        return Literal(text == "true")
    if re.fullmatch(r"-?\d+", text):
        return Literal(int(text))
    return None


class Project:
    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources
        self.decls: dict[str, dict[str, Decl]] = {}
        self.target_scope: dict[str, str | None] = {}
        for file, text in sources.items():
            scope, decls = _Reader(text, file).read()
            self.target_scope[file] = scope
            table: dict[str, Decl] = {}
            for d in decls:
                key = f"{'output:' if d.kind == 'output' else ''}{d.name}"
                if key in table:
                    raise BicepSyntaxError(f"{file}: {d.name} declared twice")
                table[key] = d
            self.decls[file] = table

    @classmethod
    def load(cls, root: Path = INFRA) -> Project:
        files = sorted(root.rglob("*.bicep"))
        return cls({p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in files})

    def mutated(self, file: str, old: str, new: str) -> Project:
        text = self.sources[file]
        if text.count(old) != 1:  # not an AssertionError: a stale mutation must error, not "pass"
            raise LookupError(f"mutation target {old!r} occurs {text.count(old)} times in {file}")
        return Project({**self.sources, file: text.replace(old, new)})

    # -- lookups ----------------------------------------------------------------------
    def get(self, file: str, name: str, kind: str | None = None) -> Decl | None:
        d = self.decls[file].get(f"output:{name}" if kind == "output" else name)
        if d is not None and kind is not None and d.kind != kind:
            return None
        return d

    def all(self, kind: str, rtype: str | None = None) -> list[Decl]:
        out = []
        for table in self.decls.values():
            for d in table.values():
                if d.kind != kind:
                    continue
                if rtype is not None and (d.type or "").lower() != rtype.lower():
                    continue
                out.append(d)
        return out

    def deployed(self, rtype: str) -> list[Decl]:
        return [d for d in self.all("resource", rtype) if not d.existing]

    def module_file(self, caller: str, module: Decl) -> str:
        path = (Path(caller).parent / str(module.type)).as_posix()
        parts: list[str] = []
        for part in path.split("/"):
            if part == "..":
                parts.pop()
            elif part not in (".", ""):
                parts.append(part)
        return "/".join(parts)

    def callers(self, file: str) -> list[tuple[str, Decl]]:
        return [
            (caller, m)
            for caller, table in self.decls.items()
            for m in table.values()
            if m.kind == "module" and self.module_file(caller, m) == file
        ]

    # -- resolution -------------------------------------------------------------------
    def resolve(self, file: str, value: Any, depth: int = 0) -> Resolved:
        if depth > 20:
            raise RecursionError(f"resolution loop in {file}: {value!r}")
        if not isinstance(value, Expr):
            return cast(Resolved, value)  # dict / list bodies are returned as they are
        lit = literal_of(value)
        if lit is not None:
            return lit
        text = value.text
        if _IDENT.fullmatch(text):
            d = self.get(file, text)
            if d is not None and d.kind == "var":
                return self.resolve(file, d.value, depth + 1)
            if d is not None and d.kind == "param":
                callers = self.callers(file)
                if not callers:
                    return Param(d)
                assert len(callers) == 1, f"{file} is used by several modules: {callers}"
                caller, module = callers[0]
                args = module.value.get("params", {})
                if text in args:
                    return self.resolve(caller, args[text], depth + 1)
                if d.value is None:
                    raise AssertionError(
                        f"{caller}: module {module.name} does not pass required param {text}"
                    )
                return self.resolve(file, d.value, depth + 1)
            return Ref(file, text)
        m = re.fullmatch(r"(\w+)\.outputs\.(\w+)", text)
        if m:
            called = self.get(file, m.group(1), "module")
            if called is not None:
                target = self.module_file(file, called)
                out = self.get(target, m.group(2), "output")
                assert out is not None, f"{target} has no output {m.group(2)} (used in {file})"
                return self.resolve(target, out.value, depth + 1)
        return Ref(file, text)

    def deployed_symbol(self, file: str, symbol: str) -> Decl:
        """The resource a symbol stands for, following `existing` references by name."""
        d = self.get(file, symbol, "resource")
        assert d is not None, f"{file}: {symbol} is not a resource"
        if not d.existing:
            return d
        name = self.resolve(file, d.value.get("name"))
        assert isinstance(name, Ref) and name.text.endswith(".name"), (
            f"{file}: existing {d.type} {symbol} is not named after a deployed resource (name "
            f"resolves to {name!r})"
        )
        target = self.deployed_symbol(name.file, name.text[: -len(".name")])
        assert (target.type or "").lower() == (d.type or "").lower(), (
            f"{file}: existing {symbol} ({d.type}) is named after a {target.type}"
        )
        return target

    def property_of(self, resolved: Resolved, rtype: str, prop: str) -> Decl:
        """Assert `resolved` is `<symbol>.<prop>` of a deployed resource of type rtype."""
        assert isinstance(resolved, Ref), f"expected {prop} of a {rtype}, got {resolved!r}"
        m = re.fullmatch(r"(\w+)\." + re.escape(prop), resolved.text)
        assert m, f"expected {prop} of a {rtype}, got {resolved.text!r} in {resolved.file}"
        target = self.deployed_symbol(resolved.file, m.group(1))
        assert (target.type or "").lower() == rtype.lower(), (
            f"{resolved.text!r} in {resolved.file} is {prop} of a {target.type}, not of a {rtype}"
        )
        return target


def path_get(body: dict[str, Any], path: str) -> Any:
    cur: Any = body
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def only(decls: list[Decl], what: str) -> Decl:
    assert len(decls) == 1, (
        f"expected exactly one {what}, found {[f'{d.file}:{d.name}' for d in decls]}"
    )
    return decls[0]


def expect_value(project: Project, res: Decl, path: str, expected: Any) -> None:
    raw = path_get(res.value, path)
    assert raw is not None, (
        f"{res.file}: {res.type} '{res.name}' is missing {path} (must be {expected!r})"
    )
    got = project.resolve(res.file, raw)
    assert got == Literal(expected), (
        f"{res.file}: {res.type} '{res.name}' has {path} = {raw!r} (resolves to {got!r}), must be "
        f"{expected!r}"
    )


def expect_param(project: Project, res: Decl, path: str, param: str) -> Param:
    raw = path_get(res.value, path)
    assert raw is not None, (
        f"{res.file}: {res.type} '{res.name}' is missing {path} (must come from param {param})"
    )
    got = project.resolve(res.file, raw)
    assert isinstance(got, Param) and got.decl.name == param, (
        f"{res.file}: {res.type} '{res.name}' {path} must come from main.bicep param {param}, "
        f"resolves to {got!r}"
    )
    return got


def param_default(param: Param) -> Any:
    if param.decl.value is None:
        return None
    lit = literal_of(param.decl.value) if isinstance(param.decl.value, Expr) else None
    return lit.value if lit else param.decl.value


# =====================================================================================
# The checks.
# =====================================================================================


def check_storage_account(p: Project) -> None:
    st = only(p.deployed(STORAGE), "storage account")
    expect_value(p, st, "properties.allowSharedKeyAccess", False)
    expect_value(p, st, "properties.allowBlobPublicAccess", False)
    expect_value(p, st, "properties.minimumTlsVersion", "TLS1_2")
    expect_value(p, st, "properties.supportsHttpsTrafficOnly", True)


def _parent(p: Project, child: Decl) -> Decl:
    raw = child.value.get("parent")
    assert isinstance(raw, Expr), f"{child.file}: {child.type} '{child.name}' has no parent"
    return p.deployed_symbol(child.file, raw.text)


def check_accounts_table(p: Project) -> None:
    tables = p.deployed(TABLES)
    named = [
        t for t in tables if p.resolve(t.file, t.value.get("name")) == Literal("linkedaccounts")
    ]
    assert named, f"no table named 'linkedaccounts' among {[t.name for t in tables]}"
    service = _parent(p, named[0])
    assert service.type == TABLE_SERVICES, f"table linkedaccounts' parent is a {service.type}"
    account = _parent(p, service)
    assert account.type == STORAGE, f"table service's parent is a {account.type}"


def check_deployment_container(p: Project) -> None:
    container = only(p.deployed(CONTAINERS), "blob container (Flex deployment package)")
    expect_value(p, container, "properties.publicAccess", "None")
    service = _parent(p, container)
    assert service.type == BLOB_SERVICES and _parent(p, service).type == STORAGE, (
        "the deployment container is not in the storage account's blob service"
    )


def check_key_vault(p: Project) -> None:
    kv = only(p.deployed(VAULTS), "key vault")
    expect_value(p, kv, "properties.enableRbacAuthorization", True)
    expect_value(p, kv, "properties.enableSoftDelete", True)
    expect_value(p, kv, "properties.softDeleteRetentionInDays", 90)
    expect_value(p, kv, "properties.enablePurgeProtection", True)
    assert path_get(kv.value, "properties.accessPolicies") is None, (
        f"{kv.file}: key vault has accessPolicies; access must be by RBAC only"
    )
    # The firewall follows vnetEnabled; test_custody_and_network.py evaluates it both ways.
    for path, wiring in (
        ("properties.publicNetworkAccess", "vnetEnabled ? 'Disabled' : 'Enabled'"),
        ("properties.networkAcls.defaultAction", "vnetEnabled ? 'Deny' : 'Allow'"),
    ):
        got = p.resolve(kv.file, path_get(kv.value, path))
        assert got == Ref("main.bicep", wiring), f"key vault {path} must be {wiring}, is {got!r}"


def check_flex_plan(p: Project) -> None:
    plan = only(p.deployed(PLANS), "App Service plan")
    expect_value(p, plan, "sku.name", "FC1")
    expect_value(p, plan, "sku.tier", "FlexConsumption")
    expect_value(p, plan, "properties.reserved", True)


def _site(p: Project) -> Decl:
    return only(p.deployed(SITES), "function app (Microsoft.Web/sites)")


def check_function_app_security(p: Project) -> None:
    site = _site(p)
    kind = p.resolve(site.file, site.value.get("kind"))
    assert kind == Literal("functionapp,linux"), (
        f"function app kind is {kind!r}, must be 'functionapp,linux'"
    )
    expect_value(p, site, "properties.httpsOnly", True)
    expect_value(p, site, "properties.siteConfig.minTlsVersion", "1.2")
    expect_value(p, site, "properties.siteConfig.ftpsState", "Disabled")
    origins = expect_param(p, site, "properties.siteConfig.cors.allowedOrigins", "portalOrigins")
    assert origins.decl.type == "array", "param portalOrigins must be an array"
    assert Expr("'*'") not in (origins.decl.value or []), "portalOrigins must not default to '*'"
    farm = path_get(site.value, "properties.serverFarmId")
    assert isinstance(farm, Expr) and farm.text.endswith(".id"), "function app has no serverFarmId"
    plan = p.deployed_symbol(site.file, farm.text[: -len(".id")])
    assert plan.type == PLANS, f"serverFarmId points at a {plan.type}"


def check_function_app_identity(p: Project) -> None:
    site = _site(p)
    expect_value(p, site, "identity.type", "UserAssigned")
    ids = path_get(site.value, "identity.userAssignedIdentities")
    assert isinstance(ids, dict) and len(ids) == 1, (
        "function app must have exactly one user-assigned identity"
    )
    key = next(iter(ids))
    m = re.fullmatch(r"\$\{(\w+)\}", key)
    assert m, f"userAssignedIdentities key {key!r} is not an identity id"
    p.property_of(p.resolve(site.file, Expr(m.group(1))), UAMI, "id")


def check_flex_runtime_and_deployment(p: Project) -> None:
    site = _site(p)
    expect_value(p, site, "properties.functionAppConfig.runtime.name", "python")
    expect_value(p, site, "properties.functionAppConfig.runtime.version", "3.13")
    storage = "properties.functionAppConfig.deployment.storage"
    expect_value(p, site, f"{storage}.type", "blobContainer")
    expect_value(p, site, f"{storage}.authentication.type", "UserAssignedIdentity")
    uami = path_get(site.value, f"{storage}.authentication.userAssignedIdentityResourceId")
    assert uami is not None, "Flex deployment storage must name the user-assigned identity"
    p.property_of(p.resolve(site.file, uami), UAMI, "id")
    target = path_get(site.value, f"{storage}.value")
    m = re.fullmatch(
        r"'\$\{(\w+)\.properties\.primaryEndpoints\.blob\}\$\{(\w+)\}'", getattr(target, "text", "")
    )
    assert m, f"Flex deployment storage value must be '<blob endpoint><container>', is {target!r}"
    assert p.deployed_symbol(site.file, m.group(1)).type == STORAGE, (
        "deployment blob endpoint is not the storage account's"
    )
    container = p.resolve(site.file, Expr(m.group(2)))
    p.property_of(container, CONTAINERS, "name")


def check_basic_publishing_credentials(p: Project) -> None:
    site = _site(p)
    found = {}
    for policy in p.deployed(PUBLISHING_POLICIES):
        parent = _parent(p, policy)
        if parent is site:
            name = p.resolve(policy.file, policy.value.get("name"))
            found[getattr(name, "value", name)] = policy
    for kind in ("ftp", "scm"):
        assert kind in found, f"function app has no basicPublishingCredentialsPolicies '{kind}'"
        expect_value(p, found[kind], "properties.allow", False)


def _app_settings(p: Project) -> dict[str, Any]:
    site = _site(p)
    assert not p.deployed(SITE_CONFIG), (
        "a Microsoft.Web/sites/config resource would replace the app settings checked here; keep "
        "them in siteConfig.appSettings"
    )
    items = path_get(site.value, "properties.siteConfig.appSettings")
    assert isinstance(items, list), "function app has no properties.siteConfig.appSettings"
    settings: dict[str, Any] = {}
    for item in items:
        name = p.resolve(site.file, item.get("name"))
        assert isinstance(name, Literal), f"app setting name {item.get('name')!r} is not a literal"
        assert name.value not in settings, f"app setting {name.value} is set twice"
        assert "value" in item, f"app setting {name.value} has no value"
        settings[name.value] = p.resolve(site.file, item["value"])
    return settings


def _identity_client_id(p: Project, resolved: Resolved, setting: str) -> None:
    try:
        p.property_of(resolved, UAMI, "properties.clientId")
    except AssertionError as exc:
        raise AssertionError(
            f"app setting {setting} must be the managed identity's client id: {exc}"
        ) from None


def _param_setting(settings: dict[str, Any], setting: str, param: str, default: Any) -> None:
    got = settings.get(setting)
    assert isinstance(got, Param) and got.decl.name == param, (
        f"app setting {setting} must come from main.bicep param {param}, resolves to {got!r}"
    )
    assert param_default(got) == default, (
        f"param {param} must default to {default!r}, defaults to {param_default(got)!r}"
    )


def check_app_settings(p: Project) -> None:
    s = _app_settings(p)
    required = [
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_ENABLE_OPENTELEMETRY",
        "AZURE_CLIENT_ID",
        "KEY_VAULT_URL",
        "ACCOUNTS_STORAGE__tableServiceUri",
        "ACCOUNTS_STORAGE__credential",
        "ACCOUNTS_STORAGE__clientId",
        "ACCOUNTS_TABLE_NAME",
        "AUTH_MODE",
        "AUTH_AUDIENCE",
        "AUTH_ISSUER",
        "AUTH_JWKS_URI",
        "AUTH_OWNER_CLAIM",
        "HEALTH_CHECK_SCHEDULE",
        "HEALTH_CHECK_CONCURRENCY",
        "CERT_EXPIRY_WARNING_DAYS",
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
        "PYTHON_THREADPOOL_THREAD_COUNT",
    ]
    missing = [k for k in required if k not in s]
    assert not missing, f"function app is missing app settings {missing}"

    for prefix in ("AzureWebJobsStorage", "ACCOUNTS_STORAGE"):
        assert s[f"{prefix}__credential"] == Literal("managedidentity"), (
            f"{prefix}__credential must be 'managedidentity'"
        )
        _identity_client_id(p, s[f"{prefix}__clientId"], f"{prefix}__clientId")
    for svc in ("blob", "queue", "table"):
        p.property_of(
            s[f"AzureWebJobsStorage__{svc}ServiceUri"],
            STORAGE,
            f"properties.primaryEndpoints.{svc}",
        )
    p.property_of(
        s["ACCOUNTS_STORAGE__tableServiceUri"], STORAGE, "properties.primaryEndpoints.table"
    )
    _identity_client_id(p, s["AZURE_CLIENT_ID"], "AZURE_CLIENT_ID")
    p.property_of(s["KEY_VAULT_URL"], VAULTS, "properties.vaultUri")
    table = p.property_of(s["ACCOUNTS_TABLE_NAME"], TABLES, "name")
    assert p.resolve(table.file, table.value.get("name")) == Literal("linkedaccounts"), (
        "ACCOUNTS_TABLE_NAME is not linkedaccounts"
    )

    p.property_of(
        s["APPLICATIONINSIGHTS_CONNECTION_STRING"], COMPONENTS, "properties.ConnectionString"
    )
    auth = s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    m = re.fullmatch(r"'Authorization=AAD;ClientId=\$\{(\w+)\}'", getattr(auth, "text", ""))
    assert m, (
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be 'Authorization=AAD;ClientId=<uami "
        f"client id>', is {auth!r}"
    )
    _identity_client_id(
        p, p.resolve(_site(p).file, Expr(m.group(1))), "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
    )

    # host.json's telemetryMode OpenTelemetry: the worker passes the host's trace context on; the
    # app sets up its own exporter, so the worker's own Azure Monitor setup must stay off.
    assert s["PYTHON_ENABLE_OPENTELEMETRY"] == Literal("true"), (
        f"PYTHON_ENABLE_OPENTELEMETRY must be 'true', is {s['PYTHON_ENABLE_OPENTELEMETRY']!r}"
    )

    assert s["AUTH_MODE"] == Literal("entra"), (
        f"AUTH_MODE must be the fixed literal 'entra', is {s['AUTH_MODE']!r}"
    )
    _param_setting(s, "AUTH_AUDIENCE", "authAudience", None)
    _param_setting(s, "AUTH_ISSUER", "authIssuer", "https://login.microsoftonline.com/{tid}/v2.0")
    _param_setting(
        s,
        "AUTH_JWKS_URI",
        "authJwksUri",
        "https://login.microsoftonline.com/common/discovery/v2.0/keys",
    )
    _param_setting(s, "AUTH_OWNER_CLAIM", "authOwnerClaim", "tid")
    _param_setting(s, "HEALTH_CHECK_SCHEDULE", "healthCheckSchedule", "0 */10 * * * *")
    for setting, param, default in (
        ("HEALTH_CHECK_CONCURRENCY", "healthCheckConcurrency", 8),
        ("CERT_EXPIRY_WARNING_DAYS", "certExpiryWarningDays", 30),
    ):
        m = re.fullmatch(r"string\((\w+)\)", getattr(s[setting], "text", ""))
        assert m, f"app setting {setting} must be string(<int param>), is {s[setting]!r}"
        _param_setting(
            {setting: p.resolve(_site(p).file, Expr(m.group(1)))}, setting, param, default
        )

    # The host cuts off huge bodies before the worker; the app's own 413 problem still answers
    # every body from 64 KiB + 1 up to this limit (shared/app/http_edge.py MAX_BODY_BYTES).
    limit = s["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]
    assert isinstance(limit, Literal) and str(limit.value).isdigit(), (
        f"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT must be a literal number of bytes, is {limit!r}"
    )
    assert MAX_BODY_BYTES < int(limit.value) <= 1024 * 1024, (
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT must be above the app's 64 KiB rule (so the app answers "
        f"its own 413 problem) and at most 1 MiB, is {limit.value}"
    )

    # One worker thread per HTTP request an instance is sent: none waits in the worker.
    threads = re.fullmatch(
        r"string\((\w+)\)", getattr(s["PYTHON_THREADPOOL_THREAD_COUNT"], "text", "")
    )
    assert threads, "PYTHON_THREADPOOL_THREAD_COUNT must be string(<the HTTP concurrency>)"
    site = _site(p)
    per_instance = path_get(
        site.value,
        "properties.functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency",
    )
    assert per_instance is not None, "the function app must set its HTTP per-instance concurrency"
    count = p.resolve(site.file, Expr(threads.group(1)))
    assert isinstance(count, Literal) and count == p.resolve(site.file, per_instance), (
        "PYTHON_THREADPOOL_THREAD_COUNT must equal the HTTP per-instance concurrency, "
        f"{count!r} != {p.resolve(site.file, per_instance)!r}"
    )

    forbidden = {
        "FUNCTIONS_WORKER_RUNTIME": "Flex takes the runtime from functionAppConfig.runtime",
        "FUNCTIONS_EXTENSION_VERSION": "Flex sets the host version itself",
        "WEBSITE_RUN_FROM_PACKAGE": "Flex deploys from functionAppConfig.deployment",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "Flex has no content share; it needs a key",
        "WEBSITE_CONTENTSHARE": "Flex has no content share",
        "AzureWebJobsStorage": "a connection string needs shared keys, which are disabled",
        "APPINSIGHTS_INSTRUMENTATIONKEY": "local auth is disabled on Application Insights",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "the app configures its own exporter; the "
        "worker's would set the global providers first",
    }
    present = {k: why for k, why in forbidden.items() if k in s}
    assert not present, f"function app sets forbidden app settings: {present}"


def check_application_insights(p: Project) -> None:
    ai = only(p.deployed(COMPONENTS), "Application Insights component")
    props = ai.value.get("properties", {})
    keys = {k.lower(): k for k in props}
    assert "disablelocalauth" in keys, (
        f"{ai.file}: Application Insights is missing DisableLocalAuth (disableLocalAuth) = true"
    )
    got = p.resolve(ai.file, props[keys["disablelocalauth"]])
    assert got == Literal(True), (
        f"{ai.file}: Application Insights {keys['disablelocalauth']} must be true, is {got!r}"
    )
    ws = props.get("WorkspaceResourceId")
    assert isinstance(ws, Expr), (
        f"{ai.file}: Application Insights must be workspace-based (WorkspaceResourceId)"
    )
    p.property_of(p.resolve(ai.file, ws), WORKSPACES, "id")
    only(p.deployed(WORKSPACES), "Log Analytics workspace")


def _role_id(p: Project, ra: Decl) -> str:
    raw = path_get(ra.value, "properties.roleDefinitionId")
    m = re.fullmatch(
        r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', (.+)\)",
        getattr(raw, "text", ""),
    )
    assert m, (
        f"{ra.file}: role assignment {ra.name} must use subscriptionResourceId(roleDefinitions, "
        "<id>)"
    )
    got = p.resolve(ra.file, Expr(m.group(1).strip()))
    assert isinstance(got, Literal), (
        f"{ra.file}: role assignment {ra.name} role id is not a literal GUID ({got!r})"
    )
    return str(got.value)


def _scope(p: Project, ra: Decl) -> Decl:
    raw = ra.value.get("scope")
    assert isinstance(raw, Expr) and _IDENT.fullmatch(raw.text), (
        f"{ra.file}: role assignment {ra.name} must be scoped to a resource symbol, not the "
        "resource group"
    )
    return p.deployed_symbol(ra.file, raw.text)


def check_app_role_assignments(p: Project) -> None:
    assignments = p.deployed(ROLE_ASSIGNMENTS)
    for ra in assignments:
        role = _role_id(p, ra)
        assert role not in (OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR), (
            f"{ra.name} grants a control-plane admin role"
        )
        _scope(p, ra)
    granted = {}
    for ra in assignments:
        principal = p.resolve(ra.file, path_get(ra.value, "properties.principalId"))
        if isinstance(principal, Ref):
            p.property_of(principal, UAMI, "properties.principalId")
            granted[_role_id(p, ra)] = ra
    for role, rtype in APP_ROLES.items():
        assert role in granted, (
            f"the app's managed identity is not granted role {role} (on a {rtype})"
        )
        ra = granted[role]
        scope = _scope(p, ra)
        assert scope.type == rtype, (
            f"role {role} for the app identity is scoped to a {scope.type}, must be the {rtype}"
        )
        assert ra.condition is None, f"role {role} for the app identity must not be conditional"
        expect_value(p, ra, "properties.principalType", "ServicePrincipal")


def check_user_role_assignments_are_optional(p: Project) -> None:
    user = []
    for ra in p.deployed(ROLE_ASSIGNMENTS):
        principal = p.resolve(ra.file, path_get(ra.value, "properties.principalId"))
        if isinstance(principal, Param):
            assert principal.decl.name == "principalId", (
                f"{ra.name} is granted to param {principal.decl.name}"
            )
            assert param_default(principal) == "", (
                "param principalId must default to '' (no assignment)"
            )
            assert ra.condition, (
                f"{ra.file}: role assignment {ra.name} for the deploying principal must be "
                "conditional"
            )
            user.append(_role_id(p, ra))
    assert sorted(user) == sorted([*APP_ROLES, *SECRET_CUSTODY_ROLES]), (
        f"deploying principal roles {user} differ from the app's {list(APP_ROLES)} + "
        f"{list(SECRET_CUSTODY_ROLES)}"
    )


def check_tags(p: Project) -> None:
    rg = only(p.deployed(RESOURCE_GROUPS), "resource group")
    tags = p.resolve(rg.file, rg.value.get("tags"))
    assert isinstance(tags, dict) and "azd-env-name" in tags, (
        "resource group lacks the azd-env-name tag"
    )
    env = p.resolve(rg.file, tags["azd-env-name"])
    assert isinstance(env, Param) and env.decl.name == "environmentName", (
        "azd-env-name must be environmentName"
    )
    site = _site(p)
    raw = site.value.get("tags")
    m = re.search(r"'azd-service-name': (\w+|'[^']*')", getattr(raw, "text", ""))
    assert m, f"function app tags {raw!r} lack azd-service-name"
    assert p.resolve(site.file, Expr(m.group(1))) == Literal("api"), (
        "azd-service-name of the function app must be 'api'"
    )


REQUIRED_OUTPUTS = {
    "AZURE_LOCATION",
    "AZURE_TENANT_ID",
    "AZURE_RESOURCE_GROUP",
    "SERVICE_API_NAME",
    "AZURE_FUNCTION_NAME",
    "AZURE_FUNCTION_DEFAULT_HOST_NAME",
    "SERVICE_API_URI",
    "API_BASE_URL",
    "AZURE_KEY_VAULT_NAME",
    "AZURE_KEY_VAULT_ENDPOINT",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_FUNCTION_IDENTITY_CLIENT_ID",
}


def check_outputs(p: Project) -> None:
    outputs = {d.name: d for d in p.decls["main.bicep"].values() if d.kind == "output"}
    missing = REQUIRED_OUTPUTS - set(outputs)
    assert not missing, f"main.bicep is missing outputs {sorted(missing)}"
    # azd writes outputs into .azure/<env>/.env; these names would hijack local runs.
    clashing = set(outputs) & {
        "AZURE_CLIENT_ID",
        "KEY_VAULT_URL",
        "AUTH_MODE",
        "AZURE_CLIENT_SECRET",
    }
    assert not clashing, (
        f"main.bicep outputs {clashing} would override the app's own settings in azd's .env"
    )
    base = outputs["API_BASE_URL"].value.text
    assert base.endswith("/api'") and base.startswith("'${"), (
        f"API_BASE_URL must be https://<host>/api, is {base}"
    )
    p.property_of(
        p.resolve("main.bicep", outputs["AZURE_KEY_VAULT_ENDPOINT"].value),
        VAULTS,
        "properties.vaultUri",
    )
    p.property_of(
        p.resolve("main.bicep", outputs["AZURE_FUNCTION_IDENTITY_CLIENT_ID"].value),
        UAMI,
        "properties.clientId",
    )


def check_no_key_material(p: Project) -> None:
    for file, text in p.sources.items():
        code = strip_comments(text)
        for needle in (
            "listKeys(",
            "AccountKey=",
            "InstrumentationKey=",
            "listSecrets(",
            "@secure()",
        ):
            assert needle not in code, (
                f"{file} uses {needle}: nothing here may handle keys or secrets"
            )


ALL_CHECKS: list[Callable[[Project], None]] = [
    check_storage_account,
    check_accounts_table,
    check_deployment_container,
    check_key_vault,
    check_flex_plan,
    check_function_app_security,
    check_function_app_identity,
    check_flex_runtime_and_deployment,
    check_basic_publishing_credentials,
    check_app_settings,
    check_application_insights,
    check_app_role_assignments,
    check_user_role_assignments_are_optional,
    check_tags,
    check_outputs,
    check_no_key_material,
]


# =====================================================================================
# Tests.
# =====================================================================================


def test_every_bicep_file_is_read(project: Project) -> None:
    expected = {
        "main.bicep",
        "app/function-app.bicep",
        "app/storage.bicep",
        "app/key-vault.bicep",
        "app/monitoring.bicep",
        "app/identity.bicep",
        "app/rbac.bicep",
        "app/network.bicep",
        "app/alerts.bicep",
    }
    assert expected <= set(project.sources), (
        f"missing Bicep files: {expected - set(project.sources)}"
    )
    assert project.target_scope["main.bicep"] == "'subscription'", (
        "main.bicep must target the subscription"
    )
    for file, table in project.decls.items():
        for d in table.values():
            if d.kind == "module":
                target = project.module_file(file, d)
                assert target in project.sources, (
                    f"{file}: module {d.name} points at missing {d.type}"
                )


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_check(project: Project, check: Callable[[Project], None]) -> None:
    check(project)


# Each mutation breaks one requirement in an otherwise intact copy; its check must fail.
# A mutation is a list of (old, new) replacements in one file.
MOVE_SHARED_KEY_TO_CONTAINER = [
    ("    allowSharedKeyAccess: false\n", ""),
    ("    publicAccess: 'None'\n", "    publicAccess: 'None'\n    allowSharedKeyAccess: false\n"),
]
MUTATIONS: list[tuple[Any, ...]] = [
    (
        "shared key on",
        "app/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        check_storage_account,
    ),
    (
        "shared-key setting on the wrong resource",
        "app/storage.bicep",
        MOVE_SHARED_KEY_TO_CONTAINER,
        check_storage_account,
    ),
    (
        "blob public access on",
        "app/storage.bicep",
        "allowBlobPublicAccess: false",
        "allowBlobPublicAccess: true",
        check_storage_account,
    ),
    (
        "storage TLS 1.0",
        "app/storage.bicep",
        "minimumTlsVersion: 'TLS1_2'",
        "minimumTlsVersion: 'TLS1_0'",
        check_storage_account,
    ),
    (
        "table renamed",
        "main.bicep",
        "var accountsTableName = 'linkedaccounts'",
        "var accountsTableName = 'accounts'",
        check_accounts_table,
    ),
    (
        "vault access policies",
        "app/key-vault.bicep",
        "enableRbacAuthorization: true",
        "enableRbacAuthorization: false",
        check_key_vault,
    ),
    (
        "vault soft delete 7 days",
        "app/key-vault.bicep",
        "softDeleteRetentionInDays: 90",
        "softDeleteRetentionInDays: 7",
        check_key_vault,
    ),
    (
        "vault purge protection off",
        "app/key-vault.bicep",
        "    enablePurgeProtection: true\n",
        "",
        check_key_vault,
    ),
    (
        "vault network hard-coded",
        "app/key-vault.bicep",
        "defaultAction: networkDefaultAction",
        "defaultAction: 'Allow'",
        check_key_vault,
    ),
    ("consumption plan", "app/function-app.bicep", "name: 'FC1'", "name: 'Y1'", check_flex_plan),
    (
        "http allowed",
        "app/function-app.bicep",
        "httpsOnly: true",
        "httpsOnly: false",
        check_function_app_security,
    ),
    (
        "tls 1.1",
        "app/function-app.bicep",
        "minTlsVersion: '1.2'",
        "minTlsVersion: '1.1'",
        check_function_app_security,
    ),
    (
        "ftps allowed",
        "app/function-app.bicep",
        "ftpsState: 'Disabled'",
        "ftpsState: 'FtpsOnly'",
        check_function_app_security,
    ),
    (
        "cors wildcard",
        "app/function-app.bicep",
        "allowedOrigins: portalOrigins",
        "allowedOrigins: ['*']",
        check_function_app_security,
    ),
    (
        "system identity",
        "app/function-app.bicep",
        "type: 'UserAssigned'",
        "type: 'SystemAssigned'",
        check_function_app_identity,
    ),
    (
        "python 3.12",
        "app/function-app.bicep",
        "version: '3.13'",
        "version: '3.12'",
        check_flex_runtime_and_deployment,
    ),
    (
        "fewer worker threads than requests",
        "app/function-app.bicep",
        "value: string(httpPerInstanceConcurrency)",
        "value: '4'",
        check_app_settings,
    ),
    (
        "deployment by connection string",
        "app/function-app.bicep",
        "type: 'UserAssignedIdentity'",
        "type: 'StorageAccountConnectionString'",
        check_flex_runtime_and_deployment,
    ),
    (
        "scm basic auth on",
        "app/function-app.bicep",
        "name: 'scm'\n  properties: {\n    allow: false",
        "name: 'scm'\n  properties: {\n    allow: true",
        check_basic_publishing_credentials,
    ),
    (
        "local auth mode",
        "app/function-app.bicep",
        "value: 'entra'",
        "value: 'local'",
        check_app_settings,
    ),
    (
        "worker runtime setting",
        "app/function-app.bicep",
        "          value: 'entra'\n        }\n",
        "          value: 'entra'\n        }\n        {\n          name: "
        "'FUNCTIONS_WORKER_RUNTIME'\n          value: 'python'\n        }\n",
        check_app_settings,
    ),
    (
        "vault url from storage",
        "app/function-app.bicep",
        "value: keyVaultUri",
        "value: storageAccount.properties.primaryEndpoints.blob",
        check_app_settings,
    ),
    (
        "client id is principal id",
        "main.bicep",
        "identityClientId: identity.outputs.clientId",
        "identityClientId: identity.outputs.principalId",
        check_app_settings,
    ),
    (
        "issuer hard-coded",
        "app/function-app.bicep",
        "value: authIssuer",
        "value: 'https://sts.windows.net/x/'",
        check_app_settings,
    ),
    (
        "authentication string without the client id",
        "app/function-app.bicep",
        "value: 'Authorization=AAD;ClientId=${identityClientId}'",
        "value: 'Authorization=AAD'",
        check_app_settings,
    ),
    (
        "worker trace context off",
        "app/function-app.bicep",
        "name: 'PYTHON_ENABLE_OPENTELEMETRY'\n          value: 'true'",
        "name: 'PYTHON_ENABLE_OPENTELEMETRY'\n          value: 'false'",
        check_app_settings,
    ),
    (
        "metrics publisher on the workspace",
        "app/rbac.bicep",
        "name: guid(applicationInsights.id, managedIdentityPrincipalId, "
        "monitoringMetricsPublisherRoleId)\n  scope: applicationInsights",
        "name: guid(applicationInsights.id, managedIdentityPrincipalId, "
        "monitoringMetricsPublisherRoleId)\n  scope: storageAccount",
        check_app_role_assignments,
    ),
    (
        "app insights local auth",
        "app/monitoring.bicep",
        "DisableLocalAuth: true",
        "DisableLocalAuth: false",
        check_application_insights,
    ),
    (
        "crypto officer on storage",
        "app/rbac.bicep",
        "name: guid(keyVault.id, managedIdentityPrincipalId, keyVaultCryptoOfficerRoleId)\n  "
        "scope: keyVault",
        "name: guid(keyVault.id, managedIdentityPrincipalId, keyVaultCryptoOfficerRoleId)\n  "
        "scope: storageAccount",
        check_app_role_assignments,
    ),
    (
        "wrong role id",
        "app/rbac.bicep",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        check_app_role_assignments,
    ),
    (
        "user roles unconditional",
        "app/rbac.bicep",
        "resource userCryptoOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if "
        "(assignUser) {",
        "resource userCryptoOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {",
        check_user_role_assignments_are_optional,
    ),
    (
        "service tag",
        "main.bicep",
        "var apiServiceName = 'api'",
        "var apiServiceName = 'web'",
        check_tags,
    ),
    (
        "output leaks AZURE_CLIENT_ID",
        "main.bicep",
        "output APPLICATIONINSIGHTS_NAME string",
        "output AZURE_CLIENT_ID string = identity.outputs.clientId\noutput "
        "APPLICATIONINSIGHTS_NAME string",
        check_outputs,
    ),
    (
        "roles on another resource",
        "main.bicep",
        "storageAccountName: storage.outputs.name\n    applicationInsightsName: "
        "monitoring.outputs.applicationInsightsName\n    keyVaultName",
        "storageAccountName: keyVault.outputs.name\n    applicationInsightsName: "
        "monitoring.outputs.applicationInsightsName\n    keyVaultName",
        check_app_role_assignments,
    ),
]


def _mutation(m: tuple[Any, ...]) -> tuple[str, list[tuple[str, str]], Callable[[Project], None]]:
    if len(m) == 4:
        return m[1], m[2], m[3]
    return m[1], [(m[2], m[3])], m[4]


@pytest.mark.parametrize(
    ("file", "edits", "check"), [pytest.param(*_mutation(m), id=str(m[0])) for m in MUTATIONS]
)
def test_check_catches_mutation(
    project: Project, file: str, edits: list[tuple[str, str]], check: Callable[[Project], None]
) -> None:
    assert_mutation_caught(project, file, edits, check)


def assert_mutation_caught(
    project: Project, file: str, edits: list[tuple[str, str]], check: Callable[[Project], None]
) -> None:
    """`check` fails on a copy of `project` with `edits` made in `file` (a stale edit, one whose
    old text no longer occurs exactly once, errors instead of passing)."""
    broken = project
    for old, new in edits:
        broken = broken.mutated(file, old, new)
    with pytest.raises(AssertionError):
        check(broken)


def test_reader_rejects_broken_bicep() -> None:
    with pytest.raises(BicepSyntaxError):
        Project(
            {
                "x.bicep": "resource a 'Microsoft.Storage/storageAccounts@2023-05-01' = "
                "{\n  name: 'a'\n"
            }
        )
    with pytest.raises(BicepSyntaxError):
        Project({"x.bicep": "resourse a 'T@1' = {\n}\n"})
    with pytest.raises(BicepSyntaxError):
        Project({"x.bicep": "param a string = 'unterminated\n"})


# ---- the azd files --------------------------------------------------------------------


def _main_params(project: Project) -> dict[str, Decl]:
    return {d.name: d for d in project.decls["main.bicep"].values() if d.kind == "param"}


def _substituted_parameters_file() -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    """main.parameters.json as azd sees it with nothing set: ${X} -> '', ${X=d} -> d."""
    text = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    mapping: dict[str, tuple[str, str | None]] = {}

    def sub(m: re.Match[str]) -> str:
        return m.group(3) if m.group(3) is not None else ""

    for m in re.finditer(r'"(\w+)":\s*\{\s*"value":\s*"?\$\{(\w+)(?:=([^}]*))?\}"?', text):
        mapping[m.group(1)] = (m.group(2), m.group(3))
    data = json.loads(
        re.sub(
            r"\$\{(\w+)(=([^}]*))?\}", lambda m: m.group(3) if m.group(3) is not None else "", text
        )
    )
    return data["parameters"], mapping


def test_parameters_file_matches_main_bicep(project: Project) -> None:
    params = _main_params(project)
    values, mapping = _substituted_parameters_file()
    unknown = set(values) - set(params)
    assert not unknown, (
        f"main.parameters.json sets params main.bicep does not declare: {sorted(unknown)}"
    )
    required = {name for name, d in params.items() if d.value is None}
    assert required <= set(mapping), (
        f"required params without an env mapping: {sorted(required - set(mapping))}"
    )
    expected_env = {
        "environmentName": "AZURE_ENV_NAME",
        "location": "AZURE_LOCATION",
        "principalId": "AZURE_PRINCIPAL_ID",
        "authAudience": "AUTH_AUDIENCE",
        "portalOrigins": "PORTAL_ORIGINS",
    }
    for param, env in expected_env.items():
        assert mapping.get(param, (None,))[0] == env, f"param {param} must map to ${{{env}}}"
    for param, (env, default) in mapping.items():
        if default is None:
            assert params[param].value is None or param == "principalId", (
                f"${{{env}}} without a default would pass '' and override the Bicep default of "
                f"{param}"
            )
            continue
        bicep_default = param_default(Param(params[param]))
        if isinstance(bicep_default, Expr):
            bicep_default = bicep_default.text
        got = values[param]["value"]
        assert str(got).lower() == str(bicep_default).lower() or got == bicep_default, (
            f"${{{env}={default}}} disagrees with the Bicep default of {param} ({bicep_default!r})"
        )
    assert values["portalOrigins"]["value"] == [], "PORTAL_ORIGINS must default to a JSON array"


def test_azure_yaml_declares_the_api_service() -> None:
    text = (REPO / "azure.yaml").read_text(encoding="utf-8")
    block = re.search(r"^services:\n((?:[ \t]+.*\n?)+)", text, re.M)
    assert block, "azure.yaml has no services section"
    api = re.search(r"^  api:\n((?:    .*\n?)+)", block.group(1), re.M)
    assert api, "azure.yaml has no service 'api' (azd finds the app by azd-service-name: api)"
    fields = dict(re.findall(r"^    (\w+):\s*(\S+)", api.group(1), re.M))
    assert fields == {"project": ".", "language": "python", "host": "function"} | {
        k: v for k, v in fields.items() if k not in ("project", "language", "host")
    }, f"service api must have project: ., language: python, host: function; has {fields}"


def test_readme_documents_every_parameter(project: Project) -> None:
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\|\s*`(\w+)`\s*\|", readme, re.M))
    missing = set(_main_params(project)) - rows
    assert not missing, f"infra/README.md parameter table lacks {sorted(missing)}"
