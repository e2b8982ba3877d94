# Gives this pod only what it needs from the credentials Secret (mounted at SOURCE_DIR in this init
# container alone): its own token (TARGET_DIR/token, --token-file) and the sha256 digests of every
# token (TARGET_DIR/tokens, --tokens-file), so the main container can check any caller's token
# without holding another component's. POSIX sh and coreutils (the Goulette image has both).
set -eu
umask 077
if [ ! -s "$SOURCE_DIR/$OWN_KEY" ]; then
  echo "goulette credentials: Secret $SECRET_NAME has no key $OWN_KEY (this pod's token); add it, or run helm upgrade so that the credentials Job adds it" >&2
  exit 1
fi
cat "$SOURCE_DIR/$OWN_KEY" > "$TARGET_DIR/token"
table="$TARGET_DIR/tokens.tmp"
: > "$table"
for file in "$SOURCE_DIR"/*; do
  [ -f "$file" ] || continue
  key=$(basename "$file")
  case "$key" in
    *.*) principal="${key%%.*}:${key#*.}" ;;
    *) principal="$key" ;;
  esac
  token=$(cat "$file")
  case "$token" in
    *[[:space:]]*|"") echo "goulette credentials: key $key of Secret $SECRET_NAME is empty or holds whitespace" >&2; exit 1 ;;
  esac
  printf '%s sha256:%s\n' "$principal" "$(printf '%s' "$token" | sha256sum | cut -d ' ' -f 1)" >> "$table"
done
mv "$table" "$TARGET_DIR/tokens"
echo "goulette credentials: $OWN_KEY's token and $(wc -l < "$TARGET_DIR/tokens") digests ready"
