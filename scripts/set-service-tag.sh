#!/bin/sh
# Replace every $SERVICE_TAG in a service manifest with a version, as
# Assemblyline service images do at build time, so the manifest's version
# and image tag equal the image's own tag.
#
# Usage: scripts/set-service-tag.sh VERSION [MANIFEST]
#   VERSION   the image tag, such as 4.6.0.stable1 or 4.6.0.dev3
#   MANIFEST  default: service_manifest.yml; edited in place
set -eu

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 VERSION [MANIFEST]" >&2
    exit 2
fi
version=$1
manifest=${2:-service_manifest.yml}

# Only characters a Docker tag allows, which also keeps sed's replacement
# free of / and &.
case "$version" in
    "" | *[!A-Za-z0-9._-]*)
        echo "invalid version '$version': use letters, digits, '.', '_' and '-' only" >&2
        exit 2
        ;;
esac
if [ ! -f "$manifest" ]; then
    echo "manifest $manifest not found" >&2
    exit 1
fi
if ! grep -q '\$SERVICE_TAG' "$manifest"; then
    echo "manifest $manifest contains no \$SERVICE_TAG to replace" >&2
    exit 1
fi

sed -i "s/\\\$SERVICE_TAG/$version/g" "$manifest"
echo "set the version of $manifest to $version"
