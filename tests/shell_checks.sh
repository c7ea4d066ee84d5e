# The assertions of the command-line test scripts (sourced; T must name their scratch directory).
# Each prints "ok   WHAT" or "FAIL WHAT" and counts failures in $failures; end a script with
#   echo "NAME: $failures failed"; exit $((failures > 0))
failures=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
fails_with() {  # fails_with DESCRIPTION NEEDLE COMMAND...: must exit non-zero, stderr naming NEEDLE
  local what=$1 needle=$2; shift 2
  if "$@" > "$T/out" 2> "$T/err"; then
    echo "FAIL $what (exit 0)"; failures=$((failures + 1))
  elif grep -qF -- "$needle" "$T/err"; then
    echo "ok   $what"
  else
    echo "FAIL $what: stderr lacks '$needle':"; cat "$T/err"; failures=$((failures + 1))
  fi
}
status_of() { "$@" > "$T/status.out" 2>&1; echo $?; }  # the exit status; output in $T/status.out
