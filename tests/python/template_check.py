"""Checks template.yaml for what the linters do not: least-privilege IAM, the routes, the
schedule and the outputs. Uses cfn-lint's own YAML loader (it understands !Sub, !Ref, …).
Exits non-zero with the list of problems."""

import sys

from cfnlint.decode import cfn_yaml

PARAMETER_ARNS = {
    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ClientSecretsParam}",
    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${TokenParam}",
}
TOKEN_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${TokenParam}"
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def as_list(value):
    return value if isinstance(value, list) else [value]


def resource_name(resource):
    """A statement resource as the text it stands for: the Sub string or the Ref target."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        return resource["Fn::Sub"]
    if isinstance(resource, dict) and "Ref" in resource:
        return "Ref:" + resource["Ref"]
    return str(resource)


def statements(policies):
    """Every statement, with `True` when it only applies under the HasKmsKey condition."""
    for policy in as_list(policies):
        for statement in as_list(policy.get("Statement", [])):
            if isinstance(statement, dict) and "Fn::If" in statement:
                condition, when_true, when_false = statement["Fn::If"]
                check(condition == "HasKmsKey", f"a conditional statement depends on {condition}")
                check(when_false == {"Ref": "AWS::NoValue"}, "a conditional statement has an else branch")
                yield when_true, True
            else:
                yield statement, False


def main(path):
    template = cfn_yaml.load(path)
    resources = template["Resources"]
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    check(set(functions) == {"CallbackFunction", "RefreshFunction"}, f"functions: {sorted(functions)}")
    globals_ = template.get("Globals", {}).get("Function", {})

    for name, function in functions.items():
        properties = function["Properties"]
        check(globals_.get("Runtime") == "provided.al2023", "runtime is not provided.al2023")
        check(globals_.get("Architectures") == ["arm64"], "architecture is not arm64")
        check(globals_.get("Handler") == "bootstrap", "handler is not bootstrap")
        check(function.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda", f"{name}: not built with cargo-lambda")
        kms_statements = 0
        for statement, conditional in statements(properties.get("Policies", [])):
            actions = set(as_list(statement["Action"]))
            names = {resource_name(r) for r in as_list(statement["Resource"])}
            check(statement.get("Effect") == "Allow", f"{name}: a statement is not Allow")
            check(not any("*" in n for n in names), f"{name}: a wildcard resource {names}")
            if conditional:
                kms_statements += 1
                check(actions == {"kms:Decrypt", "kms:Encrypt"}, f"{name}: KMS actions {actions}")
                check(names == {"Ref:KmsKeyArn"}, f"{name}: KMS resources {names}")
            elif actions == {"ssm:PutParameter"}:
                check(names == {TOKEN_ARN}, f"{name}: PutParameter on {names}")
            else:
                check(actions == {"ssm:GetParameters", "ssm:GetParameter"}, f"{name}: actions {actions}")
                check(names == PARAMETER_ARNS, f"{name}: reads {names}")
        check(kms_statements == 1, f"{name}: {kms_statements} KMS statements")

    events = functions["CallbackFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values() if e["Type"] == "HttpApi"}
    check(routes == {("GET", "/authorize"), ("GET", "/callback")}, f"routes: {routes}")
    schedules = [e for e in functions["RefreshFunction"]["Properties"]["Events"].values() if e["Type"] == "Schedule"]
    check(len(schedules) == 1 and schedules[0]["Properties"]["Schedule"] == {"Ref": "Schedule"}, "no schedule event")
    check(template["Parameters"]["Schedule"]["Default"] == "rate(1 hour)", "schedule default")

    outputs = template["Outputs"]
    authorize = outputs["AuthorizeUrl"]["Value"]
    check(resource_name(authorize).endswith("/authorize"), f"AuthorizeUrl: {authorize}")
    callback = outputs["CallbackUrl"]["Value"]["Fn::If"]
    check(callback[0] == "HasRedirectUri" and resource_name(callback[2]).endswith("/callback"), f"CallbackUrl: {callback}")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"template ok: {len(functions)} functions, {len(routes)} routes, least-privilege IAM")


if __name__ == "__main__":
    main(sys.argv[1])
