#!/usr/bin/env bash
# Check and unit-test the alerting rules with promtool, and check that the
# PrometheusRule copy (prometheusrule.yaml) is tessera-rules.yaml wrapped,
# nothing more or less.
#
#   deploy/prometheus/test.sh           check (installs promtool if missing)
#   deploy/prometheus/test.sh --write   regenerate prometheusrule.yaml first
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# promtool ships with the Debian package `prometheus`.
if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    else
        echo "promtool is missing: install the Debian package 'prometheus' (as root), or put promtool on PATH" >&2
        exit 1
    fi
fi

# The PrometheusRule: a header, then the rule file indented under `spec:`
# (its `groups:` become `spec.groups`). Blank lines stay blank.
render_prometheusrule() {
    cat <<'EOF'
# Generated from tessera-rules.yaml by deploy/prometheus/test.sh --write: do
# not edit by hand (test.sh fails when the two differ). For the Prometheus
# Operator (kube-prometheus-stack): add the labels its ruleSelector expects
# (often `release: <helm release>`) and apply it in Tessera's namespace.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tessera
  labels:
    app.kubernetes.io/name: tessera
spec:
EOF
    sed -e 's/^\(.\)/  \1/' tessera-rules.yaml
}

if [ "${1:-}" = "--write" ]; then
    render_prometheusrule >prometheusrule.yaml
    echo "wrote $here/prometheusrule.yaml"
fi

promtool check rules tessera-rules.yaml
promtool test rules tests.yaml

if ! diff -u <(render_prometheusrule) prometheusrule.yaml; then
    echo "prometheusrule.yaml differs from tessera-rules.yaml: run deploy/prometheus/test.sh --write" >&2
    exit 1
fi

# Where PyYAML is at hand, also compare the parsed rules (spec.groups and
# groups), in case the textual wrapping ever stops meaning the same thing.
if command -v python3 >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then
    python3 - <<'EOF'
import sys, yaml
rules = yaml.safe_load(open("tessera-rules.yaml"))
cr = yaml.safe_load(open("prometheusrule.yaml"))
assert cr["kind"] == "PrometheusRule", cr["kind"]
if cr["spec"]["groups"] != rules["groups"]:
    sys.exit("prometheusrule.yaml: spec.groups differ from tessera-rules.yaml groups")
EOF
fi

echo "deploy/prometheus: rules checked, every alert tested, PrometheusRule in step"
