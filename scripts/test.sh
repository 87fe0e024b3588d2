#!/usr/bin/env bash
# framepipe's whole test suite, as CI runs it: installs what the tests need into .venv (made if
# missing; an already active virtual environment is used instead), then ruff, mypy and pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k pipeline`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
ruff check .
echo "== mypy"
mypy
echo "== pytest"
python -m pytest -q "$@"
