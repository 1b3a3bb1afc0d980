"""
Tests for L{novasvc.api.openapi}: the document matches the routes.
"""

import re
from typing import Any, Iterator, Set, Tuple

from twisted.trial import unittest

from novasvc.api.app import _Routes
from novasvc.api.openapi import document
from tests._api import start_api

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def routes() -> Set[Tuple[str, str]]:
    """
    @return: (path in OpenAPI's form, lower-case method) for each klein
        route (HEAD, which werkzeug adds to GET, left out).
    """
    found = set()
    for rule in _Routes.app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD"}:
            found.add((path, method.lower()))
    return found


def operations(doc: Any) -> Iterator[Tuple[str, str, Any]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                yield path, method, operation


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


class DocumentTests(unittest.SynchronousTestCase):
    """
    The document describes exactly the routes.
    """

    def test_routes_match(self) -> None:
        """
        When the klein routes and the document's operations are listed,
        then they are the same (paths and methods), including C{/},
        C{/metrics} and the gateway.
        """
        documented = {(path, method) for path, method, _ in operations(document())}
        self.assertEqual(documented, routes())
        self.assertIn(("/v1/rpc/{topic}", "post"), documented)
        self.assertIn(("/metrics", "get"), documented)
        self.assertIn(("/", "get"), documented)

    def test_path_parameters(self) -> None:
        """
        When a path has a parameter, then the document declares it, in the
        path, required.
        """
        doc = document()
        for path, item in doc["paths"].items():
            names = set(re.findall(r"{([^}]+)}", path))
            declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
            self.assertEqual(names, declared, path)
            for parameter in item.get("parameters", []):
                self.assertTrue(parameter["required"])

    def test_well_formed(self) -> None:
        """
        When the document is read, then it is OpenAPI 3.0 with a bearer
        security scheme, every operation has an operationId (unique) and
        responses, every C{$ref} resolves, /healthz needs no token and every
        other operation documents 401 and 403.
        """
        doc = document()
        self.assertTrue(doc["openapi"].startswith("3.0."))
        self.assertEqual(doc["components"]["securitySchemes"]["bearer"],
                         {"type": "http", "scheme": "bearer"})
        ids = [op["operationId"] for _, _, op in operations(doc)]
        self.assertEqual(len(ids), len(set(ids)))
        for path, method, operation in operations(doc):
            self.assertTrue(operation["responses"], (path, method))
            if path == "/healthz":
                self.assertEqual(operation["security"], [])
            else:
                self.assertIn("401", operation["responses"], (path, method))
                self.assertIn("403", operation["responses"], (path, method))
        schemas = doc["components"]["schemas"]
        for ref in refs(doc):
            self.assertTrue(ref.startswith("#/components/schemas/"), ref)
            self.assertIn(ref.rsplit("/", 1)[1], schemas)

    def test_gateway_operation(self) -> None:
        """
        When the gateway's operation is read, then its body has exactly the
        gateway's fields (method required, timeout > 0), its topic the
        gateway's length limit, and it documents 200, 202 and the error
        statuses of the gateway (no 501: the gateway is always there).
        """
        from novasvc.api.gateway import FIELDS, TOPIC_MAX_LENGTH

        doc = document()
        item = doc["paths"]["/v1/rpc/{topic}"]
        operation = item["post"]
        body = doc["components"]["schemas"]["RPCRequest"]
        self.assertEqual(set(body["properties"]), set(FIELDS))
        self.assertEqual(body["required"], ["method"])
        self.assertEqual((body["properties"]["timeout"]["minimum"],
                          body["properties"]["timeout"]["exclusiveMinimum"]), (0, True))
        [topic] = item["parameters"]
        self.assertEqual(topic["schema"]["maxLength"], TOPIC_MAX_LENGTH)
        self.assertEqual(set(operation["responses"]),
                         {"200", "202", "400", "401", "403", "404", "415", "500", "502", "503",
                          "504"})

    def test_only_metrics_may_be_missing(self) -> None:
        """
        When the document is read, then only C{/metrics} documents a 501
        (C{prometheus_client} missing).
        """
        with501 = {path for path, _, operation in operations(document())
                   if "501" in operation["responses"]}
        self.assertEqual(with501, {"/metrics"})

    def test_copy(self) -> None:
        """
        When a caller changes the document it got, then the next one is
        unchanged.
        """
        document()["paths"].clear()
        self.assertTrue(document()["paths"])


class ServedTests(unittest.TestCase):
    """
    C{GET /v1/openapi.json}.
    """

    async def test_served(self) -> None:
        """
        When the document is asked for, then it is served as JSON.
        """
        live = await start_api(self)
        response = await live.request("GET", "/v1/openapi.json")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["content-type"], "application/json")
        self.assertEqual(response.json(), document(tokens=False))

    async def test_security_only_with_tokens(self) -> None:
        """
        When no token is configured, then the document declares no bearer
        security and no 401; with tokens, it declares both, and the
        gateway's timeout maximum is the configured one.
        """
        from novasvc.config.api import APIConfig
        from novasvc.config import Config
        from tests._api import ADMIN, token_entries

        live = await start_api(self)
        served = (await live.request("GET", "/v1/openapi.json")).json()
        self.assertNotIn("security", served)
        self.assertNotIn("securitySchemes", served["components"])
        self.assertNotIn("401", served["paths"]["/v1/services"]["get"]["responses"])
        live = await start_api(self, config=Config(host="h1", rpc_response_timeout=900),
                               api=APIConfig(tokens=token_entries()))
        served = (await live.request("GET", "/v1/openapi.json", headers=ADMIN)).json()
        self.assertEqual(served["security"], [{"bearer": []}])
        self.assertIn("401", served["paths"]["/v1/services"]["get"]["responses"])
        timeout = served["components"]["schemas"]["RPCRequest"]["properties"]["timeout"]
        self.assertEqual(timeout["maximum"], 900)

    async def test_health_timeout(self) -> None:
        """
        When C{api.health_timeout} is set, then the document's C{/healthz}
        states that wait, and its 503 declares C{Retry-After}.
        """
        from novasvc.config.api import APIConfig

        live = await start_api(self, api=APIConfig(health_timeout=1.5))
        served = (await live.request("GET", "/v1/openapi.json")).json()
        health = served["paths"]["/healthz"]["get"]
        self.assertIn("waits at most 1.5 s (api.health_timeout)", health["description"])
        self.assertIn("Retry-After", health["responses"]["503"]["headers"])

    def test_constraints(self) -> None:
        """
        When the document states the gateway's method and name patterns and
        the storable-text pattern, then the API refuses exactly what they
        refuse: a name per the pattern is accepted by the gateway's checks,
        one outside is not.
        """
        import re

        from novasvc.api.gateway import _check_method, _check_name
        from novasvc.api.gateway import _BadRequest
        from novasvc.api.openapi import METHOD_PATTERN, NAME_PATTERN

        for method in ["echo", "A", "get_2", "_private", "2x", "é", "a-b", "a b"]:
            documented = bool(re.search(METHOD_PATTERN, method))
            try:
                _check_method({"method": method})
                accepted = True
            except _BadRequest:
                accepted = False
            self.assertEqual(accepted, documented, method)
        for name in ["host-1", "a.b:c", "é", "a b", "\t", "x\x7f"]:
            documented = bool(re.search(NAME_PATTERN, name))
            try:
                _check_name({"server": name}, "server")
                accepted = True
            except _BadRequest:
                accepted = False
            self.assertEqual(accepted, documented, name)
        reason = document()["components"]["schemas"]["ServiceUpdate"]
        self.assertIn("\\u0000", str(reason))


class ReadmeTests(unittest.SynchronousTestCase):
    """
    The README's section "The API service" says what the code does.
    """

    def section(self) -> str:
        import os

        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "README.rst")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        start = text.index("The API service\n---")
        return text[start:text.index("\n------", start + 40)]

    def test_routes_table(self) -> None:
        """
        When the README's table of routes is read, then it lists exactly the
        document's operations.
        """
        def shape(path: str) -> str:
            return re.sub(r"{[^}]+}", "{}", path)

        listed = {(method, shape(path)) for method, path in
                  re.findall(r"^``([A-Z]+) (/[^` ?]*)``", self.section(), re.MULTILINE)}
        documented = {(method.upper(), shape(path)) for path, method, _ in operations(document())}
        self.assertEqual(listed, documented)

    def test_config_keys(self) -> None:
        """
        When the README's C{api:} example is read, then it has every key of
        the section, with the defaults (tokens aside).
        """
        import attrs
        import yaml

        from novasvc.config.api import APIConfig

        section = self.section()
        start = section.index("    api:\n")
        block = section[start:section.index("\n\n", start)]
        api = yaml.safe_load(block.replace("<the hex SHA-256 of the token>", "x"))["api"]
        self.assertEqual(set(api), {f.name for f in attrs.fields(APIConfig)})
        defaults = APIConfig()
        for key, value in api.items():
            if key != "tokens":
                expected = getattr(defaults, key)
                self.assertEqual(tuple(value) if isinstance(value, list) else value, expected, key)

    def test_access_line(self) -> None:
        """
        When the README's access log line is read, then it has the shape of
        the real one.
        """
        [line] = re.findall(r"^    (API 127\.0\.0\.1 .*)$", self.section(), re.MULTILINE)
        self.assertRegex(line, r'^API 127\.0\.0\.1 "GET /v1/services\?host=h" 200 \d+ '
                               r'\d+\.\d{3}s request_id=req-\S+ user=ops$')
