#!/usr/bin/env bash
# Build the training images, push them to the stack's ECR repositories and print the image
# URIs to give `sam deploy` (TrainerImageUri, PoseImageUri, PoseProbeImageUri).
#
#   infrastructure/build_and_push.sh <stack name> [trainer|pose|pose-probe ...]
#
# The repositories come from the deployed stack's outputs (TrainerRepositoryUri,
# PoseRepositoryUri, PoseProbeRepositoryUri), so deploy once first (docs/deploy.md). Images are tagged with the
# commit (plus "-dirty" when the tree has changes) and never with a moving tag alone: a job
# definition or a running training job keeps pointing at exactly what it was given.
# Needs: aws CLI v2 with credentials for the stack's account and region, docker (buildx).
set -euo pipefail

usage() {
    echo "usage: $0 <stack name> [trainer|pose|pose-probe ...]   (default: all three)" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
stack="$1"
shift
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(trainer pose pose-probe)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region)}}"
[[ -n "$region" ]] || { echo "set AWS_REGION" >&2; exit 2; }

stack_output() {
    aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

tag="$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)"
if [[ -n "$(git -C "$repo_root" status --porcelain 2>/dev/null)" ]]; then
    tag="${tag}-dirty-$(date -u +%Y%m%d%H%M%S)"
fi

registry=""
declare -A parameter_of=([trainer]=TrainerImageUri [pose]=PoseImageUri [pose-probe]=PoseProbeImageUri)
declare -A output_of=([trainer]=TrainerRepositoryUri [pose]=PoseRepositoryUri [pose-probe]=PoseProbeRepositoryUri)
# the pose probe (a Lambda image) is built from the pose container's code
declare -A dockerfile_of=(
    [trainer]=containers/trainer/Dockerfile
    [pose]=containers/pose/Dockerfile
    [pose-probe]=containers/pose/Dockerfile.probe
)
pushed=()

for image in "${images[@]}"; do
    [[ -n "${output_of[$image]:-}" ]] || usage
    dockerfile="$repo_root/${dockerfile_of[$image]}"
    [[ -f "$dockerfile" ]] || { echo "no $dockerfile" >&2; exit 1; }
    repository="$(stack_output "${output_of[$image]}")"
    [[ -n "$repository" && "$repository" != "None" ]] || {
        echo "stack $stack has no output ${output_of[$image]}: deploy it first" >&2
        exit 1
    }
    if [[ -z "$registry" ]]; then
        registry="${repository%%/*}"
        aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
    fi
    # SageMaker and Batch GPU hosts are x86_64
    # The context is containers/: every image also takes containers/jobkit (the job contract).
    docker build --platform linux/amd64 -t "$repository:$tag" \
        -f "$dockerfile" "$repo_root/containers"
    docker push "$repository:$tag"
    pushed+=("${parameter_of[$image]}=$repository:$tag")
done

echo
echo "Pushed. Deploy with (--parameter-overrides replaces the saved list: repeat the others):"
echo "  sam deploy --parameter-overrides ${pushed[*]}"
