#!/usr/bin/env bash
# Rewrites the Gradle wrapper of android_demo (gradlew, gradlew.bat, gradle/wrapper/gradle-wrapper.jar)
# for the Gradle version pinned in android_demo/gradle/wrapper/gradle-wrapper.properties, after that
# version is changed (the committed wrapper is Gradle 8.10.2's). Needs any Gradle >= 8 on PATH (the
# wrapper it writes then downloads the pinned one). Commit the three files and put the new jar's
# sha256 into tests/android_demo/test_gradle_wrapper.py (WRAPPER_SHA256).
set -euo pipefail
cd "$(dirname "$0")/../android_demo"
properties=gradle/wrapper/gradle-wrapper.properties
version=$(sed -n 's#^distributionUrl=.*/gradle-\([0-9.]*\)-bin\.zip$#\1#p' "$properties")
if [ -z "$version" ]; then
  echo "scripts/android_wrapper.sh: no gradle-<version>-bin.zip distributionUrl in android_demo/$properties" >&2
  exit 2
fi
if ! command -v gradle >/dev/null 2>&1; then
  echo "scripts/android_wrapper.sh: no 'gradle' on PATH; install Gradle >= 8 (https://gradle.org/install/," \
       "or Android Studio's bundled one) and run this again" >&2
  exit 2
fi
# --no-daemon / -p .: nothing of this project is built, only the wrapper files are written.
gradle --no-daemon -q wrapper --gradle-version "$version" --distribution-type bin -p .
ls -l gradlew gradlew.bat gradle/wrapper/gradle-wrapper.jar
echo "wrote the Gradle $version wrapper (jar sha256 $(sha256sum gradle/wrapper/gradle-wrapper.jar | cut -c1-64)); commit android_demo/gradlew, gradlew.bat and gradle/wrapper/gradle-wrapper.jar"
