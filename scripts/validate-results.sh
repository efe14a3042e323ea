#!/usr/bin/env bash
# Runs the demo and `scan --simulator` on real ELF and PE files, then checks
# the manifest and every result JSON with ../shared/tools/validate_al_result.py,
# which uses Assemblyline's own Python model. Skips, saying so, when
# ../shared/tools is absent (a user's clone).
set -euo pipefail
cd "$(dirname "$0")/.."

validator=../shared/tools/validate_al_result.py
if [ ! -f "$validator" ]; then
    echo "validate-results: skipped, $validator is absent"
    exit 0
fi

venv=${AL_VALIDATOR_VENV:-target/al-validator-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r ../shared/tools/requirements.txt
fi

cargo build --quiet
bin=target/debug/intezer-dynamic
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" demo --output-dir "$out/demo"
"$bin" scan --simulator --output-dir "$out/scan" \
    tests/fixtures/scenarios/samples/elf_true \
    tests/fixtures/scenarios/samples/elf_libxau.so \
    tests/fixtures/scenarios/samples/pe_nsis_stub.exe \
    tests/fixtures/scenarios/samples/pe_nsis_system.dll

"$venv/bin/python" "$validator" manifest service_manifest.yml
shopt -s nullglob
results=("$out"/demo/*.result.json "$out"/scan/*.result.json)
if [ ${#results[@]} -eq 0 ]; then
    echo "validate-results: no result JSON was produced" >&2
    exit 1
fi
"$venv/bin/python" "$validator" result "${results[@]}" --manifest service_manifest.yml --strict
echo "validate-results: ${#results[@]} passed, 0 failed"
