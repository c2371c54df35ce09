#!/usr/bin/env bash
# Regenerates the committed copies of the HTTP contract from the code:
#   docs/openapi.json              the service's OpenAPI 3.1 document (GET /openapi.json)
#   docs/toss-sandbox.openapi.json the Toss sandbox's document
#   docs/api.md                    the error catalog table between its markers
# The tests that compare them with the code fail until this has been run and the result
# committed, so every contract change shows in review.
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_OPENAPI=1 cargo test -q -p coursepay-api --lib http::openapi
UPDATE_OPENAPI=1 cargo test -q -p coursepay-toss-sandbox --lib openapi
git --no-pager diff --stat -- docs/
