"""The configuration table (src/config.c) against everything that repeats it: the README's
table, docker-compose.yml, the Dockerfile and the effective-configuration log line; settings
refused at start; the healthcheck subcommand reading PORT and BIND_ADDR like the service."""

import json
import re
import subprocess
import unittest

import yaml

from harness import REPO, SERVICE_BIN, IntegrationTest, http_request, wait_until

README = REPO / "README.md"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
BEGIN, END = "<!-- BEGIN config-table", "<!-- END config-table"
# README "Containers" -> Settings: these default to the compose services instead.
COMPOSE_OWN_DEFAULTS = {"DATABASE_DSN", "REDIS_ADDR", "WEBHOOK_HOST"}


def run_bin(args=(), env=None, timeout=10):
    base = {"PATH": "/usr/bin:/bin"}
    base.update(env or {})
    return subprocess.run([str(SERVICE_BIN), *args], env=base, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def config_table():
    p = run_bin(["--config-table=json"])
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert rows and all(r["name"] for r in rows), rows
    return rows


def healthcheck(port, bind_addr=None):
    env = {"PORT": str(port)}
    if bind_addr is not None:
        env["BIND_ADDR"] = bind_addr
    return run_bin(["healthcheck"], env)


class ConfigDocsTest(unittest.TestCase):
    """Static: no servers needed."""

    @classmethod
    def setUpClass(cls):
        cls.rows = config_table()
        cls.names = [r["name"] for r in cls.rows]

    def test_readme_table_is_generated(self):
        lines = README.read_text().splitlines()
        begins = [i for i, line in enumerate(lines) if line.startswith(BEGIN)]
        ends = [i for i, line in enumerate(lines) if line.startswith(END)]
        self.assertEqual((len(begins), len(ends)), (1, 1), "one BEGIN and one END marker")
        block = lines[begins[0] + 1:ends[0]]
        generated = run_bin(["--config-table"]).stdout.splitlines()
        self.assertEqual(len(generated), len(self.rows) + 2)
        self.assertEqual(block, generated,
                         "README.md's configuration table differs from src/config.c: run make docs")
        for row, line in zip(self.rows, block[2:]):
            self.assertTrue(line.startswith(f"| `{row['name']}` | "), line)

    def compose_env(self):
        compose = yaml.safe_load(COMPOSE.read_text())
        return compose["services"]["server"]["environment"]

    def test_compose_passes_every_variable(self):
        env = self.compose_env()
        want = [r["name"] for r in self.rows if not r["image"]]
        self.assertEqual(sorted(set(want) - set(env)), [], "missing in docker-compose.yml")
        self.assertEqual(sorted(set(env) - set(want)), [],
                         "in docker-compose.yml but not in the table (or set by the image)")
        for row in self.rows:
            if row["image"]:
                continue
            name = row["name"]
            with self.subTest(var=name):
                m = re.fullmatch(r"\$\{(\w+):-(.*)\}", str(env[name]))
                self.assertIsNotNone(m, f'{name}: "{env[name]}" is not "${{{name}:-<default>}}"')
                self.assertEqual(m.group(1), name)
                if name in COMPOSE_OWN_DEFAULTS:
                    self.assertNotEqual(m.group(2), "", f"{name}: compose's own default")
                else:
                    self.assertEqual(m.group(2), row["default"], f"{name}: default")

    def test_compose_uses_one_default_per_variable(self):
        # ports and the webhook service read some of them too (${PORT:-8080}, ${WEBHOOK_PATH:-...})
        env = self.compose_env()
        seen = re.findall(r"\$\{(\w+):-([^}]*)\}", COMPOSE.read_text())
        self.assertGreater(len(seen), len(env))
        for name, default in seen:
            with self.subTest(var=name):
                self.assertIn(name, self.names, f"${{{name}}} is not a setting")
                self.assertEqual(f"${{{name}:-{default}}}", env[name])

    def test_image_variables_come_from_the_dockerfile(self):
        image = [r["name"] for r in self.rows if r["image"]]
        self.assertIn("SWAGGER_DIR", image)
        env_lines = re.findall(r"^ENV\s+(\w+)=(\S+)", DOCKERFILE.read_text(), re.M)
        set_there = {k for k, _ in env_lines}
        for name in image:
            with self.subTest(var=name):
                self.assertIn(name, set_there, "the image must set it (ENV in the Dockerfile)")
                self.assertNotIn(name, self.compose_env())

    def test_bad_values_exit_2_with_one_line(self):
        cases = [
            ("PRODUCER_INTERVAL", "0.4ms", "0.4ms"),
            ("SHUTDOWN_TIMEOUT", "0.0001s", "0.0001s"),
            ("PORT", "8080abc", "8080abc"),
            ("DATABASE_DSN", "postgres://u:hunter2@db/x?sslmode=bogus", "sslmode"),
            ("DATABASE_DSN", "host=db password=hunter2 gssencmode=sometimes", "gssencmode"),
            ("DATABASE_DSN", "host=db password=hunter2 target_session_attrs=rw",
             "target_session_attrs"),
            ("DATABASE_DSN", "host=db password=hunter2 channel_binding=on", "channel_binding"),
            ("DATABASE_DSN", "host=db password=hunter2 connect_timeout=10s", "connect_timeout"),
            ("DATABASE_DSN", "host=db password=hunter2 keepalives_idle=x", "keepalives_idle"),
            ("DATABASE_DSN", "postgres://u:hun%zzter2@db/x", "percent-encoded"),
            ("DATABASE_DSN", "host=db password=hunter2 sslmdoe=require", "sslmdoe"),
            # Bytes that are not UTF-8 (surrogateescape gives the raw byte) or control
            # characters: shown as \xNN; the line was empty when JSON refused them.
            ("PORT", "8\udcd1", "8\\xd1"),
            ("API_TOKEN_FILE", "/nonexistent/\udcd1", "/nonexistent/\\xd1"),
            ("LOG_LEVEL", "in\nfo\x1b[2J", "in\\x0afo\\x1b[2J"),
        ]
        for var, val, shown in cases:
            with self.subTest(var=var, val=val):
                p = run_bin(env={var: val})
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stdout, "")
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                err = json.loads(lines[0])["error"]
                self.assertTrue(err.startswith(f"invalid {var}="), err)
                self.assertIn(shown, err)
                self.assertNotIn("ter2", err)

    def test_check_config_prints_the_effective_configuration(self):
        p = run_bin(["--check-config"], {"SHUTDOWN_DELAY": "1m30s",
                                         "WEBHOOK_AUTH_KEY": "hunter2key",
                                         "DATABASE_DSN": "postgres://u:hunter2@db/x"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        cfg = json.loads(lines[0])
        self.assertEqual(set(cfg) - {"version"}, set(self.names))
        self.assertEqual(cfg["SHUTDOWN_DELAY"], "1m30s")
        self.assertEqual(cfg["WEBHOOK_AUTH_KEY"], "*****")
        self.assertNotIn("hunter2", p.stdout)
        bad = run_bin(["--check-config"], {"SHUTDOWN_DELAY": "5x"})
        self.assertEqual((bad.returncode, bad.stdout), (2, ""))
        self.assertIn('invalid SHUTDOWN_DELAY=\\"5x\\"', bad.stderr)
        self.assertEqual(run_bin(["--check-config", "extra"]).returncode, 2)

    def test_healthcheck_refuses_bad_settings(self):
        for env, var in (({"PORT": "8080abc"}, "PORT"), ({"PORT": "0"}, "PORT"),
                         ({"PORT": "8080", "BIND_ADDR": "localhost"}, "BIND_ADDR")):
            with self.subTest(env=env):
                p = run_bin(["healthcheck"], env)
                self.assertEqual(p.returncode, 1)
                self.assertEqual(p.stdout, "")
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertTrue(lines[0].startswith(f'healthcheck: invalid {var}="'), lines[0])
                self.assertIn(env[var], lines[0])


class ConfigServiceTest(IntegrationTest):
    """With the real service."""

    def start_on(self, bind_addr):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "BIND_ADDR": bind_addr}, wait=False)
        svc.wait_log("listening", timeout=15)
        host = bind_addr if bind_addr not in ("0.0.0.0", "::") else "127.0.0.1"
        wait_until(lambda: http_request(host, svc.port, "GET", "/health", timeout=1)[0] == 200,
                   10, what=f"GET /health on {host}")
        return svc

    def test_effective_configuration_has_every_variable(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0s", "REDIS_PASSWORD": "hunter2redis",
                                  "SCHEDULER_INTERVAL": "90s"})
        entry = svc.wait_log("effective configuration")
        names = [r["name"] for r in config_table()]
        fields = set(entry) - {"ts", "level", "msg", "component", "version",
                               "open_files_limit"}
        self.assertEqual(fields, set(names))
        self.assertEqual(entry["REDIS_PASSWORD"], "*****")
        self.assertEqual(entry["WEBHOOK_AUTH_KEY"], "")
        self.assertEqual(entry["SCHEDULER_INTERVAL"], "1m30s")
        self.assertEqual(entry["PRODUCER_INTERVAL"], "0")
        self.assertEqual(entry["PORT"], svc.port)
        self.assertNotIn("hunter2", svc.raw_log())

    def test_healthcheck_dials_bind_addr_ipv4(self):
        svc = self.start_on("127.0.0.2")
        ok = healthcheck(svc.port, "127.0.0.2")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # Nothing listens on 127.0.0.1 at that port: the probe must not have gone there.
        wrong = healthcheck(svc.port, "127.0.0.1")
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("127.0.0.1", wrong.stderr)

    def test_healthcheck_dials_bind_addr_ipv6(self):
        svc = self.start_on("::1")
        ok = healthcheck(svc.port, "::1")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # The default BIND_ADDR (0.0.0.0) dials 127.0.0.1, where this service is not.
        wrong = healthcheck(svc.port)
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("127.0.0.1", wrong.stderr)

    def test_healthcheck_wildcard_ipv6_dials_loopback(self):
        svc = self.start_on("::")
        p = healthcheck(svc.port, "::")
        self.assertEqual(p.returncode, 0, p.stderr)
        svc.stop()
        p = healthcheck(svc.port, "::")
        self.assertEqual(p.returncode, 1)
        self.assertIn("[::1]", p.stderr)


if __name__ == "__main__":
    unittest.main()


class RuntimePackagesTest(unittest.TestCase):
    """The image installs packages.txt's runtime role and copies both binaries in: every
    library either binary links directly must come from one of those packages (or from
    libc6, which the base image has). A receiver that gained a library the image lacks
    made compose's stand-in webhook exit at start."""

    BASE = {"libc6"}
    # `make test SAN=1` links the sanitizers' runtimes; the image never has such a build.
    SANITIZERS = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")

    def runtime_packages(self):
        out = set()
        for line in (REPO / "packages.txt").read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) == 2 and parts[0] == "runtime":
                out.add(parts[1])
        return out

    def test_every_linked_library_is_a_runtime_package(self):
        from harness import RECEIVER_BIN
        runtime = self.runtime_packages() | self.BASE
        for binary in (SERVICE_BIN, RECEIVER_BIN):
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                                subprocess.run(["readelf", "-d", str(binary)], check=True,
                                               capture_output=True, text=True).stdout)
            ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
                ["ldd", str(binary)], check=True, capture_output=True, text=True).stdout, re.M))
            self.assertTrue(needed, binary)
            for lib in needed:
                if lib not in ldd or self.SANITIZERS.match(lib):
                    continue  # the dynamic loader itself, or a sanitizer's runtime
                owner = subprocess.run(["dpkg", "-S", ldd[lib]], capture_output=True,
                                       text=True)
                if owner.returncode != 0:  # /lib vs /usr/lib (merged /usr)
                    owner = subprocess.run(["dpkg", "-S", ldd[lib].replace("/lib/", "/usr/lib/", 1)],
                                           capture_output=True, text=True)
                self.assertEqual(owner.returncode, 0, f"{binary.name}: {lib}: {owner.stderr}")
                pkg = owner.stdout.split(":", 1)[0]
                with self.subTest(binary=binary.name, library=lib):
                    self.assertIn(pkg, runtime, f"{lib} comes from {pkg}, not in packages.txt's "
                                  "runtime role (the image would lack it)")
