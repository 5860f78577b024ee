# shellcheck shell=bash
# log.sh: messages of a step (sourced by scripts/lib.sh).

# log MESSAGE...: one line on stderr, prefixed with the step.
log() {
    printf 'golden[%s]: %s\n' "$GOLDEN_STEP" "$*" >&2
}

# die MESSAGE...: log an error and stop the step (the build fails).
die() {
    printf 'golden[%s]: error: %s\n' "$GOLDEN_STEP" "$*" >&2
    exit 1
}

# shown VALUE: VALUE quoted for a message, so that a hostile value (a newline,
# an escape sequence) cannot forge log lines.
shown() {
    printf '%q' "$1"
}
