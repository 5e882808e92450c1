#!/usr/bin/env bash
# make package: a release for operators without a Rust toolchain, in $DIST.
# Per architecture whose Rust target is installed: the three functions as
# Lambda zips, the CLI (built by the same cargo lambda build: Linux, glibc 2.26
# and later), and the template with CodeUri pointing at those zips
# (sam deploy --template-file $DIST/template-<arch>.yaml --resolve-s3
# --capabilities CAPABILITY_IAM uploads them); then SHA256SUMS.
#
# The Makefile passes VERSION, DIST, DEPLOY_VENV (cargo-lambda and zig),
# FUNCTIONS, LAMBDA_PACKAGES and CARGO_TARGET_DIR; the defaults are its own.
# A step whose failure must stop the release says so (|| exit 1).
cd "$(dirname "$0")/.." || exit 1

VERSION=${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}
DIST=${DIST:-$PWD/dist/$VERSION}
DEPLOY_VENV=${DEPLOY_VENV:-$PWD/.venv-deploy}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR
read -ra functions <<<"${FUNCTIONS:-scheduled-backup retention-pruner interruption-handler}"
read -ra lambda_packages <<<"${LAMBDA_PACKAGES:--p scheduled-backup -p retention-pruner -p interruption-handler}"

rm -rf "$DIST" || exit 1
mkdir -p "$DIST" || exit 1

built=""
for arch in arm64 x86_64; do
  case $arch in
    arm64) triple=aarch64-unknown-linux-gnu; flag=--arm64 ;;
    x86_64) triple=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
  esac
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
    echo "package: no $arch build: the $triple Rust target is not installed (rustup target add $triple)" >&2
    continue
  fi
  out=$CARGO_TARGET_DIR/lambda-$arch
  PATH=$DEPLOY_VENV/bin:$PATH cargo lambda build --release "$flag" "${lambda_packages[@]}" -p lifeboat-cli \
    --lambda-dir "$out" || exit 1
  for fn in "${functions[@]}"; do
    (cd "$out/$fn" && python3 -m zipfile -c "$DIST/lifeboat-$fn-$VERSION-$arch.zip" bootstrap) || exit 1
  done
  tmp=$(mktemp -d) && cp "$out/lifeboat/bootstrap" "$tmp/lifeboat" &&
    (cd "$tmp" && python3 -m zipfile -c "$DIST/lifeboat-cli-$VERSION-linux-$arch.zip" lifeboat) && rm -rf "$tmp"
  sed -e "s|CodeUri: \.\./target/lambda/\([a-z-]*\)/|CodeUri: lifeboat-\1-$VERSION-$arch.zip|" \
    -e "s|Architectures: \[arm64\]|Architectures: [$arch]|" \
    -e "s|ReadmeUrl: \.\./README.md|ReadmeUrl: README.md|" -e "s|LicenseUrl: \.\./LICENSE|LicenseUrl: LICENSE|" \
    infra/template.yaml >"$DIST/template-$arch.yaml"
  if grep -n "target/lambda\|: \.\./" "$DIST/template-$arch.yaml"; then
    echo "package: a path was not rewritten" >&2
    exit 1
  fi
  built="$built $arch"
done
test -n "$built" || {
  echo "package: no architecture could be built" >&2
  exit 1
}
cp -R README.md ARCHITECTURE.md LICENSE docs "$DIST/"
(cd "$DIST" && sha256sum -- *.zip *.yaml README.md ARCHITECTURE.md LICENSE docs/*.md >SHA256SUMS)
echo "lifeboat $VERSION (${built# }) packaged in $DIST:"
ls -l "$DIST"
