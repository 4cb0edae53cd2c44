"""Key custody and network isolation in infra/: each parameter followed onto what it deploys.

test_bicep_security.py reads the Bicep and resolves names across files; here a small evaluator
goes one step further and *deploys on paper*: given values for main.bicep's parameters it
evaluates conditions (`if (...)` on resources and modules), ternaries, comparisons, string
interpolation and module outputs, so a test can say "with keyCustody=vault-key the app identity
holds Crypto Officer and not Secrets Officer on the vault" or "with vnetEnabled=true the vault
answers only its private endpoint". Anything known only at deployment time (a resource id, an
endpoint) stays an Opaque reference that the tests follow back to the resource it names.

As in test_bicep_security.py, every check also runs against deliberately broken copies, so no
check can pass vacuously. The ranges of the time and retention settings are checked against
the app's own settings loader, not against numbers copied here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.core.settings import SettingsInvalid, load_settings
from tests.infra.test_bicep_security import (
    KEY_VAULT_CRYPTO_OFFICER,
    KEY_VAULT_SECRETS_OFFICER,
    ROLE_ASSIGNMENTS,
    SITES,
    STORAGE,
    UAMI,
    VAULTS,
    Decl,
    Expr,
    Project,
    _role_id,
    _scan_code_to_brace,
    _scope,
    assert_mutation_caught,
    only,
    path_get,
)

VNETS = "Microsoft.Network/virtualNetworks"
NSGS = "Microsoft.Network/networkSecurityGroups"
PRIVATE_ENDPOINTS = "Microsoft.Network/privateEndpoints"
ZONE_GROUPS = "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
DNS_ZONES = "Microsoft.Network/privateDnsZones"
DNS_LINKS = "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
NETWORK_TYPES = (VNETS, NSGS, PRIVATE_ENDPOINTS, ZONE_GROUPS, DNS_ZONES, DNS_LINKS)

# Private endpoint group id -> the private DNS zone it registers in (Azure public cloud) and the
# type of the resource it opens.
ENDPOINTS = {
    "vault": ("privatelink.vaultcore.azure.net", VAULTS),
    "blob": ("privatelink.blob.core.windows.net", STORAGE),
    "queue": ("privatelink.queue.core.windows.net", STORAGE),
    "table": ("privatelink.table.core.windows.net", STORAGE),
}

# environment() in the Azure public cloud: the only deployment-time facts the evaluator knows.
AZURE_PUBLIC_ENVIRONMENT = {
    "name": "AzureCloud",
    "suffixes": {"storage": "core.windows.net", "keyvaultDns": ".vault.azure.net"},
}

# What a deployer must pass (no default), as a real deployment would.
REQUIRED = {"environmentName": "dev", "location": "swedencentral", "authAudience": "api://x"}
A_USER = "11111111-2222-3333-4444-555555555555"


# =====================================================================================
# Evaluation of Bicep expressions under given parameter values.
# =====================================================================================


@dataclass(frozen=True)
class Opaque:
    """A value known only at deployment: `text` is the reference, in the file it is written in."""

    file: str
    text: str


@dataclass(frozen=True)
class _Module:
    file: str
    decl: Decl


@dataclass(frozen=True)
class _Outputs:
    module: _Module


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\|\||&&|==|!=|[?:!()\[\].,]))"
)


class Evaluator:
    """Evaluates expressions of a Project with main.bicep's params set to `params`."""

    def __init__(self, project: Project, params: dict[str, Any]) -> None:
        self.p = project
        self.params = {**REQUIRED, **params}
        unknown = set(params) - {
            d.name for d in project.decls["main.bicep"].values() if d.kind == "param"
        }
        assert not unknown, f"main.bicep has no params {sorted(unknown)}"

    # -- values --------------------------------------------------------------------------
    def value(self, file: str, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {k: self.value(file, v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(file, v) for v in raw]
        if raw is None:
            return None
        assert isinstance(raw, Expr), f"{file}: cannot evaluate {raw!r}"
        return self.expr(file, raw.text)

    def at(self, decl: Decl, path: str) -> Any:
        """The evaluated value of one property path of a resource."""
        return self.value(decl.file, path_get(decl.value, path))

    def symbol(self, file: str, name: str) -> Any:
        d = self.p.get(file, name)
        if d is None:
            raise AssertionError(f"{file}: unknown symbol {name}")
        if d.kind == "var":
            return self.value(file, d.value)
        if d.kind == "param":
            callers = self.p.callers(file)
            if not callers:  # main.bicep: the deployer's value, else the default
                if name in self.params:
                    return self.params[name]
                assert d.value is not None, f"main.bicep param {name} needs a value"
                return self.value(file, d.value)
            assert len(callers) == 1, f"{file} is used by several modules"
            caller, module = callers[0]
            args = module.value.get("params", {})
            if name in args:
                return self.value(caller, args[name])
            assert d.value is not None, f"{caller}: module {module.name} does not pass {name}"
            return self.value(file, d.value)
        if d.kind == "module":
            return _Module(file, d)
        return Opaque(file, name)  # a resource: its properties are deployment-time facts

    def expr(self, file: str, text: str) -> Any:
        parser = _Parser(self, file, text)
        value = parser.ternary()
        parser.end()
        return value

    def string(self, file: str, raw: str) -> Any:
        body, parts, i = raw[1:-1], [], 0
        while i < len(body):
            if body.startswith("${", i):
                j = _scan_code_to_brace(body, i + 2)
                parts.append(self.expr(file, body[i + 2 : j - 1]))
                i = j
            elif body[i] == "\\":
                parts.append(body[i + 1])
                i += 2
            else:
                parts.append(body[i])
                i += 1
        if any(isinstance(x, Opaque) for x in parts):
            return Opaque(file, raw)
        return "".join(str(x) for x in parts)

    # -- deployment ------------------------------------------------------------------------
    def deployed(self, decl: Decl) -> bool:
        """Whether `decl` is deployed: its own condition and those of the modules above it."""
        if decl.condition is not None and not self.truth(decl.file, decl.condition):
            return False
        return all(self.deployed(module) for _, module in self.p.callers(decl.file))

    def truth(self, file: str, condition: str) -> bool:
        got = self.expr(file, condition)
        assert isinstance(got, bool), f"{file}: condition {condition!r} evaluates to {got!r}"
        return got

    def resources(self, rtype: str) -> list[Decl]:
        return [d for d in self.p.deployed(rtype) if self.deployed(d)]

    def target(self, ref: Any, suffix: str) -> Decl:
        """The deployed resource `ref` (an Opaque `<symbol><suffix>`) is a property of."""
        assert isinstance(ref, Opaque), f"expected <resource>{suffix}, got {ref!r}"
        m = re.fullmatch(r"(\w+)" + re.escape(suffix), ref.text)
        assert m, f"expected <resource>{suffix}, got {ref.text!r} in {ref.file}"
        return self.p.deployed_symbol(ref.file, m.group(1))


class _Parser:
    """Recursive descent over the expression subset the templates use."""

    def __init__(self, ev: Evaluator, file: str, text: str) -> None:
        self.ev, self.file, self.s, self.i = ev, file, text, 0

    def peek(self) -> str | None:
        j = self.i
        while j < len(self.s) and self.s[j].isspace():
            j += 1
        if j >= len(self.s):
            return None
        if self.s[j] == "'":
            return "'"
        m = _TOKEN.match(self.s, self.i)
        if not m:
            raise AssertionError(f"{self.file}: cannot read {self.s[j:]!r} in {self.s!r}")
        return m.group("op") or m.group("ident") or m.group("num")

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise AssertionError(f"{self.file}: expected {expected!r} at {self.s[self.i :]!r}")
        if tok == "'":
            while self.s[self.i].isspace():
                self.i += 1
            start = self.i
            self.i += 1
            while self.s[self.i] != "'":
                if self.s.startswith("${", self.i):
                    self.i = _scan_code_to_brace(self.s, self.i + 2)
                    continue
                self.i += 2 if self.s[self.i] == "\\" else 1
            self.i += 1
            return self.s[start : self.i]
        m = _TOKEN.match(self.s, self.i)
        assert m
        self.i = m.end()
        return tok

    def end(self) -> None:
        if self.peek() is not None:
            raise AssertionError(f"{self.file}: unexpected {self.s[self.i :]!r} in {self.s!r}")

    def ternary(self) -> Any:
        cond = self.disjunction()
        if self.peek() != "?":
            return cond
        self.take("?")
        yes = self.ternary()
        self.take(":")
        no = self.ternary()
        assert isinstance(cond, bool), f"{self.file}: ternary on {cond!r} in {self.s!r}"
        return yes if cond else no

    def disjunction(self) -> Any:
        left = self.conjunction()
        while self.peek() == "||":
            self.take()
            left = _bool(left) | _bool(self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.equality()
        while self.peek() == "&&":
            self.take()
            left = _bool(left) & _bool(self.equality())
        return left

    def equality(self) -> Any:
        left = self.unary()
        while self.peek() in ("==", "!="):
            op = self.take()
            right = self.unary()
            assert not isinstance(left, Opaque) and not isinstance(right, Opaque), (
                f"{self.file}: {self.s!r} compares a deployment-time value"
            )
            left = (left == right) if op == "==" else (left != right)
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not _bool(self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() in (".", "["):
            if self.take() == ".":
                value = self.member(value, self.take())
            else:
                index = self.ternary()
                self.take("]")
                if isinstance(value, Opaque):
                    value = Opaque(value.file, f"{value.text}[{index}]")
                else:
                    value = value[index]
        return value

    def member(self, value: Any, name: str) -> Any:
        if isinstance(value, _Module) and name == "outputs":
            return _Outputs(value)
        if isinstance(value, _Outputs):
            target = self.ev.p.module_file(value.module.file, value.module.decl)
            out = self.ev.p.get(target, name, "output")
            assert out is not None, f"{target} has no output {name}"
            return self.ev.value(target, out.value)
        if isinstance(value, Opaque):
            return Opaque(value.file, f"{value.text}.{name}")
        assert isinstance(value, dict) and name in value, f"{self.file}: no .{name} on {value!r}"
        return value[name]

    def primary(self) -> Any:
        tok = self.peek()
        if tok == "(":
            self.take()
            value = self.ternary()
            self.take(")")
            return value
        if tok == "'":
            return self.ev.string(self.file, self.take())
        if tok is not None and tok.isdigit():
            return int(self.take())
        name = self.take()
        if name in ("true", "false"):
            return name == "true"
        if name == "null":
            return None
        if self.peek() == "(":
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.ternary())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            return self.call(name, args)
        return self.ev.symbol(self.file, name)

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "environment":
            return AZURE_PUBLIC_ENVIRONMENT
        if any(isinstance(a, Opaque) for a in args):
            return Opaque(self.file, f"{name}(...)")
        if name == "empty":
            return not args[0]
        if name == "replace":
            return str(args[0]).replace(str(args[1]), str(args[2]))
        if name == "string":
            # ARM's string() writes booleans as True/False: an app setting that must read
            # true/false has to be spelled out with a ternary.
            return str(args[0]) if not isinstance(args[0], str) else args[0]
        return Opaque(self.file, f"{name}(...)")


def _bool(value: Any) -> bool:
    assert isinstance(value, bool), f"expected a bool, got {value!r}"
    return value


# =====================================================================================
# Helpers on an evaluated deployment.
# =====================================================================================


def _vault_roles(ev: Evaluator) -> tuple[set[str], set[str]]:
    """Role ids the app identity and the deploying principal hold on the deployed vault."""
    app: set[str] = set()
    user: set[str] = set()
    for ra in ev.resources(ROLE_ASSIGNMENTS):
        if _scope(ev.p, ra).type != VAULTS:
            continue
        principal = ev.at(ra, "properties.principalId")
        role = _role_id(ev.p, ra)
        if principal == A_USER:
            user.add(role)
            continue
        uami = ev.target(principal, ".properties.principalId")
        assert uami.type == UAMI, f"{ra.name} is granted to a {uami.type}"
        assert ev.at(ra, "properties.principalType") == "ServicePrincipal", ra.name
        app.add(role)
    return app, user


def _settings(ev: Evaluator) -> dict[str, Any]:
    site = only(ev.resources(SITES), "function app")
    out: dict[str, Any] = {}
    for item in path_get(site.value, "properties.siteConfig.appSettings"):
        name = ev.value(site.file, item["name"])
        assert isinstance(name, str) and name not in out, f"app setting name {name!r}"
        out[name] = ev.value(site.file, item["value"])
    return out


def _main_param(p: Project, name: str) -> Decl:
    d = p.get("main.bicep", name, "param")
    assert d is not None, f"main.bicep has no param {name}"
    return d


def _decorator_int(d: Decl, which: str) -> int:
    for dec in d.decorators:
        m = re.fullmatch(rf"@{which}\((\d+)\)", dec)
        if m:
            return int(m.group(1))
    raise AssertionError(f"main.bicep param {d.name} has no @{which}")


def _allowed(d: Decl) -> list[str]:
    for dec in d.decorators:
        if dec.startswith("@allowed("):
            return re.findall(r"'([^']*)'", dec)
    raise AssertionError(f"main.bicep param {d.name} has no @allowed")


def _combinations() -> Iterator[dict[str, Any]]:
    for custody in ("vault-key", "vault-secret"):
        for keep in (False, True):
            for sku in ("standard", "premium"):
                for vnet in (False, True):
                    yield {
                        "keyCustody": custody,
                        "keepSecretsRole": keep,
                        "keyVaultSku": sku,
                        "vnetEnabled": vnet,
                        "principalId": A_USER,
                    }


# =====================================================================================
# The checks.
# =====================================================================================


def check_custody_parameters(p: Project) -> None:
    custody = _main_param(p, "keyCustody")
    assert _allowed(custody) == ["vault-key", "vault-secret"], "keyCustody @allowed"
    assert Evaluator(p, {}).symbol("main.bicep", "keyCustody") == "vault-key", (
        "keyCustody must default to vault-key (the app's default custody in Azure)"
    )
    sku = _main_param(p, "keyVaultSku")
    assert _allowed(sku) == ["standard", "premium"], "keyVaultSku @allowed"
    assert Evaluator(p, {}).symbol("main.bicep", "keyVaultSku") == "standard"
    for flag in ("keepSecretsRole", "vnetEnabled"):
        d = _main_param(p, flag)
        assert d.type == "bool", f"{flag} must be a bool"
        assert Evaluator(p, {}).symbol("main.bicep", flag) is False, f"{flag} defaults to false"


def check_vault_roles_follow_custody(p: Project) -> None:
    for params in _combinations():
        for grant_user in (True, False):
            ev = Evaluator(p, {**params, "grantPrincipalDataAccess": grant_user})
            app, user = _vault_roles(ev)
            secrets = params["keyCustody"] == "vault-secret" or params["keepSecretsRole"]
            expected = {KEY_VAULT_CRYPTO_OFFICER} | (
                {KEY_VAULT_SECRETS_OFFICER} if secrets else set()
            )
            assert app == expected, (
                f"with {params} the app identity holds {sorted(app)} on the vault, must hold "
                f"{sorted(expected)} (Crypto Officer always; Secrets Officer only for vault-secret "
                "or keepSecretsRole)"
            )
            assert user == (expected if grant_user else set()), (
                f"with {params}, grantPrincipalDataAccess={grant_user} the deploying principal "
                f"holds {sorted(user)} on the vault"
            )


def check_vault_sku_and_hsm_setting(p: Project) -> None:
    for params in _combinations():
        ev = Evaluator(p, params)
        vault = only(ev.resources(VAULTS), "key vault")
        assert ev.at(vault, "properties.sku") == {"family": "A", "name": params["keyVaultSku"]}, (
            f"with {params} the vault sku is {ev.at(vault, 'properties.sku')!r}"
        )
        settings = _settings(ev)
        hsm = "true" if params["keyVaultSku"] == "premium" else "false"
        assert settings.get("KEY_VAULT_HSM") == hsm, (
            f"with keyVaultSku={params['keyVaultSku']} KEY_VAULT_HSM must be {hsm!r} (RSA-HSM "
            f"keys need a Premium vault), is {settings.get('KEY_VAULT_HSM')!r}"
        )
        assert settings.get("KEY_CUSTODY") == params["keyCustody"], (
            f"KEY_CUSTODY must be {params['keyCustody']!r}, is {settings.get('KEY_CUSTODY')!r}"
        )
        kv_url = settings.get("KEY_VAULT_URL")
        assert ev.target(kv_url, ".properties.vaultUri") is vault, "KEY_VAULT_URL is not the vault"


def check_firewalls_follow_vnet(p: Project) -> None:
    for vnet in (False, True):
        ev = Evaluator(p, {"vnetEnabled": vnet})
        for rtype in (VAULTS, STORAGE):
            res = only(ev.resources(rtype), rtype)
            got = (
                ev.at(res, "properties.publicNetworkAccess"),
                ev.at(res, "properties.networkAcls.defaultAction"),
                ev.at(res, "properties.networkAcls.bypass"),
            )
            want = (
                ("Disabled", "Deny", "AzureServices")
                if vnet
                else ("Enabled", "Allow", "AzureServices")
            )
            assert got == want, (
                f"with vnetEnabled={vnet} the {rtype} has publicNetworkAccess, defaultAction, "
                f"bypass = {got}, must be {want}"
            )


def _subnet(ev: Evaluator, ref: Any) -> dict[str, Any]:
    """The subnet a `<vnet>.properties.subnets[i].id` reference names."""
    assert isinstance(ref, Opaque), f"expected a subnet id, got {ref!r}"
    m = re.fullmatch(r"(\w+)\.properties\.subnets\[(\d+)\]\.id", ref.text)
    assert m, f"expected <vnet>.properties.subnets[i].id, got {ref.text!r} in {ref.file}"
    vnet = ev.p.deployed_symbol(ref.file, m.group(1))
    assert vnet.type == VNETS and ev.deployed(vnet), f"{ref.text} is not a deployed network"
    subnets = ev.at(vnet, "properties.subnets")
    return dict(subnets[int(m.group(2))], vnet=vnet)


def check_network_only_with_vnet(p: Project) -> None:
    ev = Evaluator(p, {"vnetEnabled": False})
    present = {t: [d.name for d in ev.resources(t)] for t in NETWORK_TYPES if ev.resources(t)}
    assert not present, f"with vnetEnabled=false nothing of the network is deployed: {present}"
    site = only(ev.resources(SITES), "function app")
    assert ev.at(site, "properties.virtualNetworkSubnetId") is None, (
        "with vnetEnabled=false the app must not join a subnet"
    )


def check_site_joins_delegated_subnet(p: Project) -> None:
    ev = Evaluator(p, {"vnetEnabled": True})
    site = only(ev.resources(SITES), "function app")
    subnet = _subnet(ev, ev.at(site, "properties.virtualNetworkSubnetId"))
    services = [d["properties"]["serviceName"] for d in subnet["properties"].get("delegations", [])]
    assert services == ["Microsoft.App/environments"], (
        f"the app's subnet must be delegated to Microsoft.App/environments (Flex Consumption), "
        f"is delegated to {services}"
    )
    vnet = only(ev.resources(VNETS), "virtual network")
    space = [
        ipaddress.IPv4Network(x) for x in ev.at(vnet, "properties.addressSpace.addressPrefixes")
    ]
    prefixes = [
        ipaddress.IPv4Network(s["properties"]["addressPrefix"])
        for s in ev.at(vnet, "properties.subnets")
    ]
    for net in prefixes:
        assert any(net.subnet_of(s) for s in space), f"subnet {net} outside {space}"
    assert not prefixes[0].overlaps(prefixes[1]), f"subnets overlap: {prefixes}"
    for s in ev.at(vnet, "properties.subnets"):
        nsg = s["properties"].get("networkSecurityGroup", {}).get("id")
        assert ev.target(nsg, ".id").type == NSGS, f"subnet {s['name']} has no NSG"


def check_private_endpoints(p: Project) -> None:
    ev = Evaluator(p, {"vnetEnabled": True})
    vnet = only(ev.resources(VNETS), "virtual network")
    endpoints: dict[str, Decl] = {}
    for pe in ev.resources(PRIVATE_ENDPOINTS):
        connections = ev.at(pe, "properties.privateLinkServiceConnections")
        assert len(connections) == 1, f"{pe.name}: one connection per endpoint"
        groups = connections[0]["properties"]["groupIds"]
        assert len(groups) == 1 and groups[0] in ENDPOINTS, f"{pe.name} group ids {groups}"
        assert groups[0] not in endpoints, f"two private endpoints for {groups[0]}"
        endpoints[groups[0]] = pe
        opened = ev.target(connections[0]["properties"]["privateLinkServiceId"], ".id")
        kind = ENDPOINTS[groups[0]][1]
        assert opened.type == kind, (
            f"private endpoint {groups[0]} opens a {opened.type}, must open the {kind}"
        )
        subnet = _subnet(ev, ev.at(pe, "properties.subnet.id"))
        assert subnet["vnet"] is vnet and not subnet["properties"].get("delegations"), (
            f"private endpoint {groups[0]} must sit in the network's undelegated subnet"
        )
    assert set(endpoints) == set(ENDPOINTS), (
        f"with vnetEnabled=true there must be private endpoints {sorted(ENDPOINTS)}, found "
        f"{sorted(endpoints)}"
    )

    zones = {ev.at(z, "name"): z for z in ev.resources(DNS_ZONES)}
    links: dict[str, list[Decl]] = {}
    for link in ev.resources(DNS_LINKS):
        zone = p.deployed_symbol(link.file, link.value["parent"].text)
        links.setdefault(ev.at(zone, "name"), []).append(link)
    for group, (zone_name, _) in ENDPOINTS.items():
        assert zone_name in zones, f"no private DNS zone {zone_name} (zones: {sorted(zones)})"
        assert ev.at(zones[zone_name], "location") == "global", f"{zone_name} must be global"
        linked = [
            link
            for link in links.get(zone_name, [])
            if ev.target(ev.at(link, "properties.virtualNetwork.id"), ".id") is vnet
        ]
        assert len(linked) == 1, f"private DNS zone {zone_name} must be linked to the network"
        assert ev.at(linked[0], "properties.registrationEnabled") is False, zone_name
        groups = [
            g
            for g in ev.resources(ZONE_GROUPS)
            if p.deployed_symbol(g.file, g.value["parent"].text) is endpoints[group]
        ]
        assert len(groups) == 1, f"private endpoint {group} must have one privateDnsZoneGroup"
        configs = ev.at(groups[0], "properties.privateDnsZoneConfigs")
        registered = [ev.target(c["properties"]["privateDnsZoneId"], ".id") for c in configs]
        assert registered == [zones[zone_name]], (
            f"private endpoint {group} must register in {zone_name}, registers in "
            f"{[ev.at(z, 'name') for z in registered]}"
        )


# App setting -> main.bicep param -> the Settings attribute the app reads it into.
LIMIT_SETTINGS = [
    ("VERIFY_TIMEOUT_SECONDS", "verifyTimeoutSeconds", "verify_timeout_seconds"),
    ("UNLINKED_KEY_RETENTION_DAYS", "unlinkedKeyRetentionDays", "unlinked_key_retention_days"),
    ("HISTORY_RETENTION_DAYS", "historyRetentionDays", "history_retention_days"),
    ("KEY_RETIREMENT_DAYS", "keyRetirementDays", "key_retirement_days"),
    ("HEALTH_CHECK_INTERVAL_HOURS", "healthCheckIntervalHours", "health_check_interval_hours"),
    (
        "HEALTH_CHECK_TIME_BUDGET_SECONDS",
        "healthCheckTimeBudgetSeconds",
        "health_check_budget_seconds",
    ),
    ("HEALTH_CHECK_CONCURRENCY", "healthCheckConcurrency", "health_check_concurrency"),
    ("CERT_EXPIRY_WARNING_DAYS", "certExpiryWarningDays", "cert_expiry_warning_days"),
    ("OIDC_KEY_ROTATION_DAYS", "oidcKeyRotationDays", "oidc_key_rotation_days"),
]
_LOCAL_APP = {"AUTH_MODE": "local"}


def _app_accepts(setting: str, value: int) -> bool:
    try:
        load_settings({**_LOCAL_APP, setting: str(value)})
    except SettingsInvalid as exc:
        assert any(setting in problem for problem in exc.problems), exc.problems
        return False
    return True


def check_limit_settings_match_the_app(p: Project) -> None:
    app_defaults = load_settings(_LOCAL_APP)
    for setting, param, attribute in LIMIT_SETTINGS:
        d = _main_param(p, param)
        lo, hi = _decorator_int(d, "minValue"), _decorator_int(d, "maxValue")
        default = Evaluator(p, {}).symbol("main.bicep", param)
        assert default == getattr(app_defaults, attribute), (
            f"param {param} defaults to {default}, the app's {setting} to "
            f"{getattr(app_defaults, attribute)}"
        )
        assert _app_accepts(setting, lo) and _app_accepts(setting, hi), (
            f"the app refuses {setting} at the bounds of param {param} ({lo}..{hi})"
        )
        assert not _app_accepts(setting, lo - 1) and not _app_accepts(setting, hi + 1), (
            f"param {param} allows {lo}..{hi}, wider than or off the app's range for {setting}"
        )
        for value in (lo, default, hi):
            got = _settings(Evaluator(p, {param: value})).get(setting)
            assert got == str(value), f"{param}={value} gives app setting {setting}={got!r}"


def _azure_app_issuer(host_name: str, oidc_issuer: str | None) -> str:
    """The issuer the app itself reads in Azure on that host, with OIDC_ISSUER set or not."""
    env = {
        "AUTH_AUDIENCE": "api://x",
        "AUTH_ISSUER": "https://login.microsoftonline.com/{tid}/v2.0",
        "WEBSITE_INSTANCE_ID": "0123abcd",
        "WEBSITE_HOSTNAME": host_name,
        "KEY_VAULT_URL": "https://kv-x.vault.azure.net",
        "ACCOUNTS_STORAGE__tableServiceUri": "https://stx.table.core.windows.net",
    }
    if oidc_issuer is not None:
        env["OIDC_ISSUER"] = oidc_issuer
    return load_settings(env).oidc_issuer


def check_oidc_issuer_setting(p: Project) -> None:
    """OIDC_ISSUER is the app's default host name + /api/oidc, exactly what the app itself would
    take in Azure, unless oidcIssuer pins another name (a custom domain); the app accepts what
    the template writes, and the deployment outputs it."""
    assert Evaluator(p, {}).symbol("main.bicep", "oidcIssuer") == "", "oidcIssuer defaults to ''"
    for app_name in ("func-contoso", "func-api-links-prod"):
        ev = Evaluator(p, {"functionAppName": app_name})
        written = _settings(ev).get("OIDC_ISSUER")
        host = f"{app_name}.azurewebsites.net"
        assert written == f"https://{host}/api/oidc", f"OIDC_ISSUER is {written!r}"
        assert written == _azure_app_issuer(host, None) == _azure_app_issuer(host, written), (
            f"the app on {host} reads OIDC_ISSUER={written!r} otherwise than written"
        )
        output = p.get("main.bicep", "OIDC_ISSUER", "output")
        assert output is not None and ev.value("main.bicep", output.value) == written, (
            "main.bicep must output OIDC_ISSUER as written on the app"
        )
    generated = _settings(Evaluator(p, {})).get("OIDC_ISSUER")
    assert isinstance(generated, Opaque) and generated.text.endswith("/api/oidc'"), generated
    pinned = "https://links.contoso.example/tenant-links/oidc"
    ev = Evaluator(p, {"functionAppName": "func-contoso", "oidcIssuer": pinned})
    assert _settings(ev).get("OIDC_ISSUER") == pinned, "a pinned oidcIssuer must be written as is"
    assert _azure_app_issuer("func-contoso.azurewebsites.net", pinned) == pinned


ALL_CHECKS: list[Callable[[Project], None]] = [
    check_custody_parameters,
    check_vault_roles_follow_custody,
    check_vault_sku_and_hsm_setting,
    check_firewalls_follow_vnet,
    check_network_only_with_vnet,
    check_site_joins_delegated_subnet,
    check_private_endpoints,
    check_limit_settings_match_the_app,
    check_oidc_issuer_setting,
]


# =====================================================================================
# Tests.
# =====================================================================================


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_check(project: Project, check: Callable[[Project], None]) -> None:
    check(project)


def test_evaluator_reads_the_expressions_used() -> None:
    p = Project(
        {
            "main.bicep": "param a bool = false\nparam b string = 'x'\n"
            "var c = !a && (b == 'x' || b != 'y') ? 'on-${b}' : null\n"
            "var d = replace(environment().suffixes.keyvaultDns, '.vault.', '.vaultcore.')\n"
            "var e = string(3)\n"
        }
    )
    assert Evaluator(p, {}).symbol("main.bicep", "c") == "on-x"
    assert Evaluator(p, {"a": True}).symbol("main.bicep", "c") is None
    assert Evaluator(p, {}).symbol("main.bicep", "d") == ".vaultcore.azure.net"
    assert Evaluator(p, {}).symbol("main.bicep", "e") == "3"
    with pytest.raises(AssertionError):
        Evaluator(p, {"nope": 1})


# Each mutation breaks one requirement in an otherwise intact copy; its check must fail.
MUTATIONS: list[tuple[str, str, list[tuple[str, str]], Callable[[Project], None]]] = [
    (
        "custody defaults to vault-secret",
        "main.bicep",
        [("param keyCustody string = 'vault-key'", "param keyCustody string = 'vault-secret'")],
        check_custody_parameters,
    ),
    (
        "network on by default",
        "main.bicep",
        [("param vnetEnabled bool = false", "param vnetEnabled bool = true")],
        check_custody_parameters,
    ),
    (
        "secrets officer for every custody",
        "app/rbac.bicep",
        [
            (
                "resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' "
                "= if (grantSecretsRole) {",
                "resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' "
                "= {",
            )
        ],
        check_vault_roles_follow_custody,
    ),
    (
        "keepSecretsRole ignored",
        "app/rbac.bicep",
        [
            (
                "var grantSecretsRole = keyCustody == 'vault-secret' || keepSecretsRole",
                "var grantSecretsRole = keyCustody == 'vault-secret'",
            )
        ],
        check_vault_roles_follow_custody,
    ),
    (
        "crypto user instead of crypto officer",
        "app/rbac.bicep",
        [
            (
                "var keyVaultCryptoOfficerRoleId = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'",
                "var keyVaultCryptoOfficerRoleId = '12338af0-0e69-4776-bea7-57ae8d297424'",
            )
        ],
        check_vault_roles_follow_custody,
    ),
    (
        "custody not passed to rbac",
        "main.bicep",
        [("    keyCustody: keyCustody\n    keepSecretsRole: keepSecretsRole\n", "")],
        check_vault_roles_follow_custody,
    ),
    (
        "vault sku hard-coded",
        "app/key-vault.bicep",
        [("      name: skuName\n", "      name: 'standard'\n")],
        check_vault_sku_and_hsm_setting,
    ),
    (
        "hsm setting by string()",
        "app/function-app.bicep",
        [("value: keyVaultHsm ? 'true' : 'false'", "value: string(keyVaultHsm)")],
        check_vault_sku_and_hsm_setting,
    ),
    (
        "hsm setting not wired to the sku",
        "main.bicep",
        [("keyVaultHsm: keyVaultSku == 'premium'", "keyVaultHsm: false")],
        check_vault_sku_and_hsm_setting,
    ),
    (
        "custody setting hard-coded",
        "app/function-app.bicep",
        [("          value: keyCustody\n", "          value: 'vault-secret'\n")],
        check_vault_sku_and_hsm_setting,
    ),
    (
        "vault open with the network",
        "main.bicep",
        [
            (
                "var keyVaultNetworkDefaultAction = vnetEnabled ? 'Deny' : 'Allow'",
                "var keyVaultNetworkDefaultAction = 'Allow'",
            )
        ],
        check_firewalls_follow_vnet,
    ),
    (
        "storage public with the network",
        "main.bicep",
        [
            (
                "var storagePublicNetworkAccess = vnetEnabled ? 'Disabled' : 'Enabled'",
                "var storagePublicNetworkAccess = 'Enabled'",
            )
        ],
        check_firewalls_follow_vnet,
    ),
    (
        "storage closed without the network",
        "main.bicep",
        [
            (
                "var storageNetworkDefaultAction = vnetEnabled ? 'Deny' : 'Allow'",
                "var storageNetworkDefaultAction = 'Deny'",
            )
        ],
        check_firewalls_follow_vnet,
    ),
    (
        "network deployed unconditionally",
        "main.bicep",
        [
            (
                "module network './app/network.bicep' = if (vnetEnabled) {",
                "module network './app/network.bicep' = {",
            )
        ],
        check_network_only_with_vnet,
    ),
    (
        "app joins the subnet always",
        "app/function-app.bicep",
        [
            (
                "virtualNetworkSubnetId: vnetEnabled ? appSubnetId : null",
                "virtualNetworkSubnetId: appSubnetId",
            )
        ],
        check_network_only_with_vnet,
    ),
    (
        "app joins the endpoint subnet",
        "app/network.bicep",
        [
            (
                "output appSubnetId string = virtualNetwork.properties.subnets[1].id",
                "output appSubnetId string = virtualNetwork.properties.subnets[0].id",
            )
        ],
        check_site_joins_delegated_subnet,
    ),
    (
        "app subnet delegated to App Service",
        "app/network.bicep",
        [("serviceName: 'Microsoft.App/environments'", "serviceName: 'Microsoft.Web/serverFarms'")],
        check_site_joins_delegated_subnet,
    ),
    (
        "no queue endpoint",
        "app/network.bicep",
        [
            (
                "          groupIds: [\n            'queue'\n",
                "          groupIds: [\n            'file'\n",
            )
        ],
        check_private_endpoints,
    ),
    (
        "table endpoint opens the vault",
        "app/network.bicep",
        [
            (
                "        name: 'table'\n        properties: {\n          privateLinkServiceId: "
                "storageAccount.id",
                "        name: 'table'\n        properties: {\n          privateLinkServiceId: "
                "keyVault.id",
            )
        ],
        check_private_endpoints,
    ),
    (
        "blob zone misnamed",
        "app/network.bicep",
        [
            (
                "var blobZoneName = 'privatelink.blob.${environment().suffixes.storage}'",
                "var blobZoneName = 'blob.${environment().suffixes.storage}'",
            )
        ],
        check_private_endpoints,
    ),
    (
        "vault zone not linked",
        "app/network.bicep",
        [
            (
                "resource vaultZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks"
                "@2020-06-01' = {",
                "resource vaultZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks"
                "@2020-06-01' = if (false) {",
            )
        ],
        check_private_endpoints,
    ),
    (
        "queue endpoint registers in the table zone",
        "app/network.bicep",
        [
            (
                "privateDnsZoneId: queueZone.id",
                "privateDnsZoneId: tableZone.id",
            )
        ],
        check_private_endpoints,
    ),
    (
        "verify timeout wider than the app",
        "main.bicep",
        [
            (
                "@maxValue(600)\nparam verifyTimeoutSeconds",
                "@maxValue(900)\nparam verifyTimeoutSeconds",
            )
        ],
        check_limit_settings_match_the_app,
    ),
    (
        "retention default off the app",
        "main.bicep",
        [("param unlinkedKeyRetentionDays int = 7", "param unlinkedKeyRetentionDays int = 30")],
        check_limit_settings_match_the_app,
    ),
    (
        "history retention wider than the app",
        "main.bicep",
        [
            (
                "@maxValue(3650)\nparam historyRetentionDays",
                "@maxValue(36500)\nparam historyRetentionDays",
            )
        ],
        check_limit_settings_match_the_app,
    ),
    (
        "key retirement allows a negative window",
        "main.bicep",
        [
            (
                "@minValue(0)\n@maxValue(90)\nparam keyRetirementDays",
                "@minValue(-1)\n@maxValue(90)\nparam keyRetirementDays",
            )
        ],
        check_limit_settings_match_the_app,
    ),
    (
        "issuer rotation allows a week",
        "main.bicep",
        [
            (
                "@minValue(30)\n@maxValue(730)\nparam oidcKeyRotationDays",
                "@minValue(7)\n@maxValue(730)\nparam oidcKeyRotationDays",
            )
        ],
        check_limit_settings_match_the_app,
    ),
    (
        "issuer default with a trailing slash",
        "app/function-app.bicep",
        [("/api/oidc'\n", "/api/oidc/'\n")],
        check_oidc_issuer_setting,
    ),
    (
        "issuer default at the site root",
        "app/function-app.bicep",
        [
            (
                "'https://${name}.${appServiceDomain}/api/oidc'",
                "'https://${name}.${appServiceDomain}'",
            )
        ],
        check_oidc_issuer_setting,
    ),
    (
        "pinned issuer ignored",
        "app/function-app.bicep",
        [("!empty(oidcIssuer) ? oidcIssuer : ", "")],
        check_oidc_issuer_setting,
    ),
    (
        "issuer not written on the app",
        "app/function-app.bicep",
        [("name: 'OIDC_ISSUER'", "name: 'OIDC_ISSUER_UNUSED'")],
        check_oidc_issuer_setting,
    ),
    (
        "budget setting from the wrong param",
        "app/function-app.bicep",
        [
            (
                "value: string(healthCheckTimeBudgetSeconds)",
                "value: string(verifyTimeoutSeconds)",
            )
        ],
        check_limit_settings_match_the_app,
    ),
]


@pytest.mark.parametrize(
    ("file", "edits", "check"), [pytest.param(*m[1:], id=m[0]) for m in MUTATIONS]
)
def test_check_catches_mutation(
    project: Project, file: str, edits: list[tuple[str, str]], check: Callable[[Project], None]
) -> None:
    assert_mutation_caught(project, file, edits, check)
