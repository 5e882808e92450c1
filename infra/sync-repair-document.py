#!/usr/bin/env python3
"""Generates the stack's two SSM Command documents from the scripts
interruption-handler runs on a node, so the documents are those scripts:

    <stack>-repair   crates/lifeboat-core/scripts/lifeboat-repair.sh
    <stack>-health   crates/lifeboat-core/scripts/lifeboat-repair.sh --health

Each runs `bash -s -- {{ args }}` over a heredoc of its script, with two
String parameters: `args` (the script's arguments as one string, restricted by
an allowedPattern to exactly what the handler sends) and `executionTimeout`
(seconds, the step's timeoutSeconds). The handler sends them as
LIFEBOAT_SSM_DOCUMENTS=<stack> (crates/lifeboat-aws/src/ssm.rs).

    sync-repair-document.py                      rewrite the block in infra/template.yaml
    sync-repair-document.py --check              exit 1 if the template is out of date
    sync-repair-document.py --write-documents D  also write D/<prefix>-repair.yaml and
        D/<prefix>-health.yaml (--prefix, default lifeboat), the same content as
        standalone documents for `aws ssm create-document` (cargo lambda deploy)

The block lies between the BEGIN/END GENERATED SSM DOCUMENTS comments. Only
the scripts' text is copied: they must be bash, must not contain SSM's `{{`
parameter syntax, nor a line equal to the heredoc's delimiter.
"""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
SCRIPTS = ROOT / "crates" / "lifeboat-core" / "scripts"
BEGIN = "  # BEGIN GENERATED SSM DOCUMENTS\n"
END = "  # END GENERATED SSM DOCUMENTS\n"

# What the handler sends (crates/lifeboat-core/src/relaunch/{repair,drill}.rs):
#   repair: "--timeout 480", "--from-image --timeout 480" (the state came from
#   an image), "--quarantine --timeout 480"; operators add --dry-run
#   health: "<kubernetes node name> --timeout 120"
# Node names are RFC 1123 subdomains (lowercase letters, digits, '-', '.').
TIMEOUT = "--timeout [1-9][0-9]{0,4}"
REPAIR_ARGS = f"^(--dry-run )?(--quarantine )?(--from-image )?{TIMEOUT}$"
HEALTH_ARGS = f"^[a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])? {TIMEOUT}$"
EXECUTION_TIMEOUT = "^[0-9]{1,5}$"


_CONTRACT: dict | None = None


def contract(path: str | None = None) -> dict:
    """What the code declares (lifeboat-core's contract example): read from
    PATH, else printed by cargo. Nothing here reads Rust source."""
    global _CONTRACT
    if _CONTRACT is None:
        if path:
            _CONTRACT = json.loads(pathlib.Path(path).read_text())
        else:
            command = ["cargo", "run", "--quiet", "-p", "lifeboat-core", "--example", "contract"]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
            _CONTRACT = json.loads(done.stdout)
    return _CONTRACT


def repair_timeout() -> tuple[int, int]:
    """The repair's budget and the SSM command's executionTimeout, as the handler sends them."""
    ssm = contract()["ssm"]
    return int(ssm["repair_timeout_seconds"]), int(ssm["command_timeout_seconds"])


def documents() -> list[dict]:
    repair, command = repair_timeout()
    return [
        {
            "logical": "RepairDocument",
            "suffix": "repair",
            "script": "lifeboat-repair.sh",
            "delimiter": "LIFEBOAT_REPAIR",
            "description": "lifeboat-repair - bring a restored kubeadm control plane back healthy, whatever its IP, and release its boot guard",
            "args": {
                "description": "--dry-run, --quarantine, --from-image (each optional, in this order), then --timeout SECONDS (the budget of all the script's waits)",
                "default": f"--timeout {repair}",
                "allowedPattern": REPAIR_ARGS,
            },
            "timeout": str(command),
        },
        {
            "logical": "HealthDocument",
            "suffix": "health",
            "script": "lifeboat-repair.sh",
            "mode": "--health ",
            "delimiter": "LIFEBOAT_HEALTH",
            "description": "lifeboat-repair --health - is this control plane healthy on its own IP (apiserver, etcd, the node Ready); changes nothing",
            "args": {
                "description": "The Kubernetes node name, then --timeout SECONDS",
                "default": None,
                "allowedPattern": HEALTH_ARGS,
            },
            "timeout": str(command),
        },
    ]


def quote(s: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + s.replace("'", "''") + "'"


def script_text(doc: dict) -> str:
    """The script as the handler sends it: the contract's text (without its
    comment lines: lifeboat_core::ports::Script::sent_text)."""
    path = SCRIPTS / doc["script"]
    text = contract()["ssm"]["scripts"][doc["suffix"]]
    if "{{" in text or "}}" in text:
        sys.exit(f"{path}: contains '{{{{' or '}}}}', which SSM would read as a document parameter")
    if any(line.strip() == doc["delimiter"] for line in text.splitlines()):
        sys.exit(f"{path}: a line equals the heredoc delimiter {doc['delimiter']}")
    if not text.startswith("#!/usr/bin/env bash"):
        sys.exit(f"{path}: not a bash script")
    return text


# SSM's quota: a document of at most 64 KB (Systems Manager endpoints and
# quotas, "Maximum size of a document"), held here for the content both as
# the template writes it (YAML) and as JSON.
DOCUMENT_LIMIT = 64 * 1024


def check_size(doc: dict) -> None:
    yaml_text = content(doc, "")
    command = f"bash -s -- {doc.get('mode', '')}{{{{ args }}}} <<'{doc['delimiter']}'\n{script_text(doc)}\n{doc['delimiter']}"
    # The rest of the document (description, parameters) as JSON is under 1 KB.
    size = max(len(yaml_text.encode()), len(json.dumps(command).encode()) + 1024)
    if size > DOCUMENT_LIMIT:
        sys.exit(f"the {doc['suffix']} document is {size} bytes, over SSM's {DOCUMENT_LIMIT}: shorten {SCRIPTS / doc['script']}")


def content(doc: dict, indent: str) -> str:
    """The document's Content mapping, as YAML lines indented by `indent`."""
    args = doc["args"]
    lines = [
        'schemaVersion: "2.2"',
        f"description: {quote(doc['description'])}",
        "parameters:",
        "  args:",
        "    type: String",
        f"    description: {quote(args['description'])}",
    ]
    if args["default"] is not None:
        lines.append(f"    default: {quote(args['default'])}")
    lines += [
        f"    allowedPattern: {quote(args['allowedPattern'])}",
        "  executionTimeout:",
        "    type: String",
        "    description: 'Seconds before the command is stopped and counted as failed'",
        f"    default: {quote(doc['timeout'])}",
        f"    allowedPattern: {quote(EXECUTION_TIMEOUT)}",
        "mainSteps:",
        "  - action: aws:runShellScript",
        f"    name: {doc['suffix']}",
        "    inputs:",
        "      timeoutSeconds: '{{ executionTimeout }}'",
        "      runCommand:",
        "        - |",
        f"          bash -s -- {doc.get('mode', '')}{{{{ args }}}} <<'{doc['delimiter']}'",
    ]
    body = [("          " + line) if line.strip() else "" for line in script_text(doc).splitlines()]
    lines += body + [f"          {doc['delimiter']}"]
    return "".join((indent + line if line else "") + "\n" for line in lines)


def block() -> str:
    out = []
    for doc in documents():
        check_size(doc)
        out += [
            f"  {doc['logical']}:\n",
            "    Type: AWS::SSM::Document\n",
            "    Properties:\n",
            f"      Name: !Sub ${{AWS::StackName}}-{doc['suffix']}\n",
            "      DocumentType: Command\n",
            "      DocumentFormat: YAML\n",
            "      UpdateMethod: NewVersion\n",
            "      Content:\n",
            content(doc, "        "),
            "\n",
        ]
    return "".join(out).rstrip("\n") + "\n"


def rendered_template() -> str:
    text = TEMPLATE.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        sys.exit(f"{TEMPLATE}: expected one '{BEGIN.strip()}' and one '{END.strip()}' line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return head + BEGIN + block() + END + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if infra/template.yaml is out of date")
    parser.add_argument("--write-documents", metavar="DIR", help="also write standalone documents into DIR")
    parser.add_argument("--prefix", default="lifeboat", help="document name prefix for --write-documents")
    parser.add_argument("--contract", metavar="FILE", help="the contract example's output (default: run it with cargo)")
    options = parser.parse_args()
    contract(options.contract)

    rendered = rendered_template()
    if options.check:
        if rendered != TEMPLATE.read_text():
            print(
                "infra/template.yaml: the SSM documents differ from crates/lifeboat-core/scripts/; run `make infra`",
                file=sys.stderr,
            )
            sys.exit(1)
    else:
        TEMPLATE.write_text(rendered)
    if options.write_documents:
        directory = pathlib.Path(options.write_documents)
        directory.mkdir(parents=True, exist_ok=True)
        for doc in documents():
            path = directory / f"{options.prefix}-{doc['suffix']}.yaml"
            path.write_text(content(doc, ""))
            print(path)


if __name__ == "__main__":
    main()
