#!/usr/bin/env bash
# Builds the pure-JVM core and its tests with plain javac (no Gradle needed), and optionally runs the tests.
#
#   bash android_demo/core/build.sh [--install-deps] [--test GOLDEN_DIR]
#
#   --install-deps   install a JDK from Debian (default-jdk-headless) when javac is missing (needs root/apt)
#   --test DIR       run the tests against golden vectors in DIR; write them first with
#                    `python -m edgevlm.testing.android_golden DIR` (exports a tiny bundle, ~1 min)
#
# Output: android_demo/core/build/classes (the core), build/test-classes (tests), build/edgevlm-core.jar.
# The tests need no JUnit: TestRunner prints one line per test and closes with "N passed, M failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install_deps=0
golden=""
while [ $# -gt 0 ]; do
    case "$1" in
        --install-deps) install_deps=1 ;;
        --test) shift; golden="${1:?--test needs a golden directory}" ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if ! command -v javac >/dev/null 2>&1; then
    if [ "$install_deps" = 1 ]; then
        echo "build.sh: javac not found, installing default-jdk-headless from Debian" >&2
        sudo_cmd=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
        export DEBIAN_FRONTEND=noninteractive
        $sudo_cmd apt-get update -qq
        $sudo_cmd apt-get install -y -qq --no-install-recommends default-jdk-headless >/dev/null
    else
        echo "build.sh: javac (JDK 11 or newer) not found; install one or rerun with --install-deps" >&2
        exit 1
    fi
fi

version="$(javac -version 2>&1 | awk '{print $2}')"
if [ "${version%%.*}" -lt 11 ] 2>/dev/null; then
    echo "build.sh: javac $version is too old; the core needs Java 11 or newer" >&2
    exit 1
fi

build="$here/build"
rm -rf "$build/classes" "$build/test-classes"
mkdir -p "$build/classes" "$build/test-classes"
# --release 11: the core must stay within what Android's desugared Java 11 API offers.
javac --release 11 -Xlint:all -Werror -encoding UTF-8 -d "$build/classes" \
    $(find "$here/src/main/java" -name '*.java')
# The tests may use newer API (Stream.toList); they run on the host JDK only.
javac -Xlint:all -Werror -encoding UTF-8 -cp "$build/classes" -d "$build/test-classes" \
    $(find "$here/src/test/java" -name '*.java')
jar --create --file "$build/edgevlm-core.jar" -C "$build/classes" .
echo "build.sh: built $build/edgevlm-core.jar with javac $version"

if [ -n "$golden" ]; then
    exec java -cp "$build/classes:$build/test-classes" org.edgevlm.core.TestRunner "$golden"
fi
