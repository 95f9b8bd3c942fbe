#!/usr/bin/env bash
# The one command a student or instructor runs.
#   ./grade.sh [A] [options]   grade assignment A (default: every assignment you have started)
#   ./grade.sh --selftest      run the grader's own tests (--all: the slow sweeps too, as CI does)
# The first run creates a virtual environment in .venv and installs the grader into it. Where
# Python has no venv (a Colab or Jupyter kernel's, often), or GRADER_NO_VENV=1, it installs the
# grader's dependencies into that Python and runs the grader from this folder.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.installed"

# Optional extras for instructors, e.g. GRADER_EXTRAS=slurm,ray for `grader batch --executor slurm|ray`.
EXTRAS="test${GRADER_EXTRAS:+,$GRADER_EXTRAS}"

# True when the stamp lists every extra asked for now (a venv set up with more serves fewer).
has_extras() {
    local installed extra
    installed=",$(cat "$STAMP"),"
    for extra in ${EXTRAS//,/ }; do
        [[ "$installed" == *",$extra,"* ]] || return 1
    done
}

# What runs the grader: the virtual environment's, or this Python with this folder on its path.
GRADER_PYTHON="$VENV/bin/python"

use_this_python() {
    echo "Using $PYTHON as it is (no virtual environment): installing the grader's dependencies into it..." >&2
    local deps
    deps=$("$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
    mapfile -t deps <<< "$deps"
    # A torch the kernel already has (Colab's, with its GPU build) is kept as it is.
    if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        mapfile -t deps < <(printf '%s\n' "${deps[@]}" | grep -v '^torch')
    fi
    "$PYTHON" -m pip install --quiet "${deps[@]}" "pytest-xdist>=3"
    GRADER_PYTHON="$PYTHON"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
}

set_up() {
    if [ "${GRADER_NO_VENV:-}" = "1" ] || { [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; }; then
        use_this_python
        return
    fi
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && has_extras; then
        return
    fi
    echo "Setting up the grader in $VENV (first run only)..." >&2
    # A torch the machine already has is used as it is; otherwise the 2.13 series is installed,
    # so every student and every grading machine computes with the same library.
    if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet "torch==2.13.*"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    if [ -f "$STAMP" ]; then  # keep what an earlier set-up installed
        EXTRAS=$(printf '%s,%s' "$(cat "$STAMP")" "$EXTRAS" | tr ',' '\n' | sort -u | paste -sd, -)
    fi
    "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
    compile_bytecode
    echo "$EXTRAS" > "$STAMP"
}

# The bytecode of the grader, its reference and its checks, written where Python would not write it
# itself: an environment with PYTHONDONTWRITEBYTECODE set (common in containers and CI images) has
# every grading process compile them again (0.1-0.2 s each). Only what changed is compiled again.
compile_bytecode() {
    "$GRADER_PYTHON" -m compileall -q grader reference assignments >/dev/null 2>&1 || true
}

set_up
if [ "${1:-}" = "--selftest" ]; then
    shift
    compile_bytecode
    # Every core unless told otherwise (-n N, or -p no:xdist for one process). The slow sweeps (every
    # catalogued mistake and mutant, corpora, real clusters) run with --all, as CI does, or -m slow.
    parallel=(-n auto)
    selection=(-m "not slow")
    rest=()
    for arg in "$@"; do
        case "$arg" in
            -n|-n*|--numprocesses*|no:xdist) parallel=() ;;
            -m|-m*) selection=() ;;
        esac
        if [ "$arg" = "--all" ]; then selection=(); else rest+=("$arg"); fi
    done
    exec "$GRADER_PYTHON" -m pytest tests ${parallel[@]+"${parallel[@]}"} ${selection[@]+"${selection[@]}"} \
        ${rest[@]+"${rest[@]}"}
fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exec "$GRADER_PYTHON" -m grader grade --help
fi
# --ci may come anywhere, even before the assignment: it is passed on after it.
options=()
for arg in "$@"; do
    [ "$arg" = "--ci" ] || options+=("$arg")
done
ci=()
[ ${#options[@]} -eq $# ] || ci=(--ci)
set -- ${options[@]+"${options[@]}"}
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
    mapfile -t assignments < <("$GRADER_PYTHON" -m grader.delivery.touched)
    status=0
    for assignment in "${assignments[@]}"; do
        "$GRADER_PYTHON" -m grader grade "$assignment" "$@" ${ci[@]+"${ci[@]}"} || status=$?
    done
    exit $status
fi
exec "$GRADER_PYTHON" -m grader grade "$@" ${ci[@]+"${ci[@]}"}
