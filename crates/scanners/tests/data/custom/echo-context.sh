#!/bin/sh
# A custom scanner for the tests: it reports one finding per account it was given, echoing
# ACCOUNT_IDS, BILLING and SCAN_RUN_ID back, so the tests can check the environment contract.
# The first argument picks how the report is delivered.
set -eu
mode="${1:-ndjson}"

finding() {
  # $1 = account id
  printf '{"target":"account://%s","rule_id":"context-echo","severity":"info","title":"Scanned account %s","location":"billing=%s","detail":"run=%s accounts=%s greeting=%s"}' \
    "$1" "$1" "$BILLING" "$SCAN_RUN_ID" "$ACCOUNT_IDS" "${GREETING:-}"
}

# A report whose first line is a 5 MB finding and whose second is not UTF-8, followed by
# two good findings.
messy() {
  printf '{"target":"account://1","rule_id":"huge","severity":"low","title":"Huge","detail":"'
  head -c 5000000 /dev/zero | tr '\0' x
  printf '"}\n'
  printf '{"target":"account://1","rule_id":"latin1","severity":"low","title":"caf\351"}\n'
  printf '{"target":"account://1","rule_id":"good-1","severity":"low","title":"Good"}\n'
  printf '{"target":"account://2","rule_id":"good-2","severity":"low","title":"Good"}\n'
}

case "$mode" in
  messy)
    messy
    ;;
  messy-file)
    echo "writing the report to $SCANPLANE_OUTPUT"
    messy > "$SCANPLANE_OUTPUT"
    ;;
  ndjson)
    for id in $(echo "$ACCOUNT_IDS" | tr ',' ' '); do
      finding "$id"
      echo
    done
    ;;
  slow)
    # One finding, a pause, then the rest: shows that stdout is read while the scanner runs.
    first=true
    for id in $(echo "$ACCOUNT_IDS" | tr ',' ' '); do
      finding "$id"
      echo
      if $first; then sleep 3; first=false; fi
    done
    ;;
  file)
    echo "starting scan of $TARGETS"
    {
      printf '{"findings": ['
      sep=""
      for id in $(echo "$ACCOUNT_IDS" | tr ',' ' '); do
        printf '%s' "$sep"
        finding "$id"
        sep=","
      done
      printf ']}\n'
    } > "$SCANPLANE_OUTPUT"
    echo "report written to $SCANPLANE_OUTPUT"
    ;;
  sarif)
    cat <<SARIF
{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"echo-context","rules":[{"id":"billing-flag","properties":{"security-severity":"7.5"}}]}},
 "results":[{"ruleId":"billing-flag","level":"warning","message":{"text":"billing=$BILLING accounts=$ACCOUNT_IDS"}}]}]}
SARIF
    ;;
  fail)
    echo "checking accounts $ACCOUNT_IDS" >&2
    echo "fatal: credentials for account rejected" >&2
    exit 7
    ;;
  garbage)
    echo "this is not a report"
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
