"""Checks template.yaml for what the linters do not: least-privilege IAM, the routes, the
schedule, the alarms and where they go, the throttling and the outputs. Uses cfn-lint's own
YAML loader (it understands !Sub, !Ref, …). Exits non-zero with the list of problems.

With --alarms, prints the alarms on the GmailOAuth namespace as JSON instead (for the test
that compares them with the metrics the release binary prints). With --patterns and a JSON
list of cases ({"parameter", "value"}), prints whether the template accepts each value (its
AllowedPattern and MaxLength). With --authorize-url and a RedirectUri, prints the
AuthorizeUrl output the template computes from it (the tests compare both with the code)."""

import json
import re
import sys

from cfnlint.decode import cfn_yaml

ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
SECRETS_ARN = ARN + "${ClientSecretsParam}"
TOKEN_ARN = ARN + "${TokenParam}"
MAILBOXES_ARN = ARN + "${MailboxesPath}/*"
PATH_ARN = ARN + "${MailboxesPath}"
CHECKPOINT_ARN = TOKEN_ARN + "/checkpoint"
MAILBOX_CHECKPOINTS_ARN = ARN + "${MailboxesPath}/*/checkpoint"
BUS_ARN = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
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
    """Every statement with the condition it applies under: None, "HasKmsKey", or
    ("HasMailboxesPath", True/False) for the two branches of the mailbox statement."""
    for policy in as_list(policies):
        for statement in as_list(policy.get("Statement", [])):
            if isinstance(statement, dict) and "Fn::If" in statement:
                condition, when_true, when_false = statement["Fn::If"]
                if when_false == {"Ref": "AWS::NoValue"}:
                    yield when_true, condition
                else:
                    check(condition == "HasMailboxesPath", f"a two-way statement depends on {condition}")
                    yield when_true, (condition, True)
                    yield when_false, (condition, False)
            else:
                yield statement, None


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
        seen = []
        for statement, condition in statements(properties.get("Policies", [])):
            actions = set(as_list(statement["Action"]))
            names = {resource_name(r) for r in as_list(statement["Resource"])}
            effect = statement.get("Effect")
            if effect == "Deny":
                # Only the callback's refusal of every checkpoint under the path.
                check(name == "CallbackFunction" and names == {MAILBOX_CHECKPOINTS_ARN} and condition == "HasMailboxesPath", f"{name}: a Deny statement on {names}")
                seen.append((condition, frozenset(actions), frozenset(names)))
                continue
            check(effect == "Allow", f"{name}: a statement is neither Allow nor the checkpoints' Deny")
            # The only wildcard: the mailboxes under the path, and only with a path.
            wildcards = {n for n in names if "*" in n}
            check(wildcards <= {MAILBOXES_ARN}, f"{name}: a wildcard resource {wildcards}")
            if "kms:Decrypt" in actions:
                # The key through Parameter Store only, for these parameters only.
                condition_block = statement.get("Condition", {})
                via = condition_block.get("StringEquals", {}).get("kms:ViaService")
                check(resource_name(via) == "ssm.${AWS::Region}.${AWS::URLSuffix}", f"{name}: kms:ViaService {via}")
                context = as_list(condition_block.get("StringLike", {}).get("kms:EncryptionContext:PARAMETER_ARN", []))
                check(len(context) == 2 and resource_name(context[0]) == SECRETS_ARN, f"{name}: PARAMETER_ARN {context}")
                branches = context[1].get("Fn::If", []) if len(context) == 2 and isinstance(context[1], dict) else []
                check(len(branches) == 3 and branches[0] == "HasMailboxesPath" and [resource_name(b) for b in branches[1:]] == [MAILBOXES_ARN, TOKEN_ARN], f"{name}: PARAMETER_ARN branches {branches}")
            seen.append((condition, frozenset(actions), frozenset(names)))
        expected = [
            (None, {"ssm:GetParameters"}, {SECRETS_ARN}),
            (("HasMailboxesPath", True), {"ssm:GetParameters", "ssm:PutParameter"}, {MAILBOXES_ARN}),
            (("HasMailboxesPath", False), {"ssm:GetParameters", "ssm:PutParameter"}, {TOKEN_ARN}),
            ("HasKmsKey", {"kms:Decrypt", "kms:Encrypt"}, {"Ref:KmsKeyArn"}),
        ]
        if name == "CallbackFunction":
            expected.append(("HasMailboxesPath", {"ssm:GetParameters", "ssm:PutParameter"}, {MAILBOX_CHECKPOINTS_ARN}))
        if name == "RefreshFunction":
            # Only the scheduled run enumerates the mailboxes, keeps the events checkpoint
            # (beside the one token, or under the path) and publishes, on its bus only.
            expected.append(("HasMailboxesPath", {"ssm:GetParametersByPath"}, {PATH_ARN}))
            expected.append(("HasEventBus", {"events:PutEvents"}, {BUS_ARN}))
            expected[2] = (("HasMailboxesPath", False), {"ssm:GetParameters", "ssm:PutParameter"}, {TOKEN_ARN, CHECKPOINT_ARN})
        expected = [(c, frozenset(a), frozenset(n)) for c, a, n in expected]
        canonical = lambda items: sorted((str(c), sorted(a), sorted(n)) for c, a, n in items)
        check(canonical(seen) == canonical(expected), f"{name}: statements {canonical(seen)}")
        environment = properties.get("Environment", {}).get("Variables", {})
        if name == "RefreshFunction":
            check("MAILBOX_CONCURRENCY" in environment, f"{name}: no MAILBOX_CONCURRENCY")
            check("EVENT_BUS_NAME" in environment and "GMAIL_LABEL" in environment, f"{name}: no EVENT_BUS_NAME or GMAIL_LABEL")
    check(template["Parameters"]["EventBusName"]["Default"] == "default", "EventBusName default")
    check(template["Parameters"]["GmailLabel"]["Default"] == "INBOX", "GmailLabel default")
    shared = globals_.get("Environment", {}).get("Variables", {})
    check("MAILBOXES_PATH" in shared and "SSM_WRITE_TPS" in shared, "MAILBOXES_PATH or SSM_WRITE_TPS missing")

    events = functions["CallbackFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values() if e["Type"] == "HttpApi"}
    check(routes == {("GET", "/authorize"), ("GET", "/callback")}, f"routes: {routes}")
    schedules = [e for e in functions["RefreshFunction"]["Properties"]["Events"].values() if e["Type"] == "Schedule"]
    by_minutes = {"Fn::FindInMap": ["Schedules", {"Ref": "ScheduleMinutes"}, "Expression"]}
    check(len(schedules) == 1 and schedules[0]["Properties"]["Schedule"] == by_minutes, "no schedule event")
    check(template["Parameters"]["ScheduleMinutes"]["Default"] == "60", "schedule default")
    mapping = template["Mappings"]["Schedules"]
    check(set(mapping) == set(template["Parameters"]["ScheduleMinutes"]["AllowedValues"]), "a schedule without its mapping")
    for minutes, entry in mapping.items():
        expression, seconds = entry["Expression"], entry["Seconds"]
        check(seconds == int(minutes) * 60, f"schedule {minutes}: {seconds} s")
        amount, unit = expression[len("rate("):-1].split(" ")
        factor = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}[unit]
        check(int(amount) * factor == int(minutes) and (int(amount) == 1) == (not unit.endswith("s")), f"schedule {minutes}: {expression}")

    # Lambda's own JSON log format (not a hand-set AWS_LAMBDA_LOG_FORMAT), into log groups
    # with a retention.
    logging = globals_.get("LoggingConfig", {})
    check(logging.get("LogFormat") == "JSON", f"LoggingConfig: {logging}")
    for name, function in functions.items():
        environment = function["Properties"].get("Environment", {}).get("Variables", {})
        check("AWS_LAMBDA_LOG_FORMAT" not in environment, f"{name}: AWS_LAMBDA_LOG_FORMAT set by hand")
        group = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        check(group in resources and resources[group]["Properties"].get("RetentionInDays"), f"{name}: log group {group}")
        check(resources.get(group, {}).get("DeletionPolicy") == "Retain" and resources.get(group, {}).get("UpdateReplacePolicy") == "Retain", f"{name}: log group {group} not retained")
    check("AWS_LAMBDA_LOG_FORMAT" not in globals_.get("Environment", {}).get("Variables", {}), "AWS_LAMBDA_LOG_FORMAT set by hand")

    # The public routes are throttled.
    route_settings = resources["HttpApi"].get("Properties", {}).get("DefaultRouteSettings", {})
    check({"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(route_settings), f"HttpApi throttling: {route_settings}")

    # Failed scheduled runs: one retry, then a queue, on purpose.
    invoke = functions["RefreshFunction"]["Properties"].get("EventInvokeConfig", {})
    check(invoke.get("MaximumRetryAttempts") in (0, 1, 2), f"EventInvokeConfig: {invoke}")
    on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {})
    check(on_failure.get("Destination") == {"Fn::GetAtt": ["FailedRunsQueue", "Arn"]}, f"on-failure destination: {on_failure}")

    # Every alarm reaches the topic, which the AlertEmail parameter subscribes to.
    topic = resources["AlertTopic"]
    subscription = topic["Properties"]["Subscription"]["Fn::If"]
    check(subscription[0] == "HasAlertEmail" and subscription[1][0]["Endpoint"] == {"Ref": "AlertEmail"}, f"subscription: {subscription}")
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    for needed in [("GmailOAuth", "MailboxesReauthorizationRequired"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Invocations")]:
        check(needed in watched, f"no alarm on {needed}")
    for name, alarm in alarms.items():
        check(alarm.get("AlarmActions") == [{"Ref": "AlertTopic"}], f"{name}: not sent to AlertTopic")
        check(alarm.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": "RefreshFunction"}}], f"{name}: dimensions")
        check(alarm.get("Period") == {"Fn::FindInMap": ["Schedules", {"Ref": "ScheduleMinutes"}, "Seconds"]}, f"{name}: period")
        if alarm["MetricName"] == "Invocations":
            # A schedule that stopped leaves no data point at all: the alarm speaks on
            # INSUFFICIENT_DATA (missing data is "missing"), so a new stack is quiet until
            # its first run instead of alarming at once.
            check(alarm["TreatMissingData"] == "missing" and alarm["EvaluationPeriods"] == 2, f"{name}: missing data")
            check(alarm.get("InsufficientDataActions") == [{"Ref": "AlertTopic"}], f"{name}: silent when the runs stop")
    # Day one is not an emergency: no alarm treats missing data as breaching.
    for name, alarm in alarms.items():
        check(alarm.get("TreatMissingData") != "breaching", f"{name}: fires before the first run")
    check(("GmailOAuth", "MailboxesNotReached") in watched, "no alarm on MailboxesNotReached")
    for name, alarm in alarms.items():
        check("with errorType" not in json.dumps(alarm.get("AlarmDescription")), f"{name}: the log field is error_type")
    reauthorize = alarms["ReauthorizationAlarm"]["AlarmDescription"]["Fn::Sub"]
    check("${Url}" in reauthorize[0] and reauthorize[1]["Url"] == template["Outputs"]["AuthorizeUrl"]["Value"], "the re-authorization alarm does not carry AuthorizeUrl")

    # With a custom domain, the consent starts on that domain (where the cookie is set).
    outputs = template["Outputs"]
    authorize = outputs["AuthorizeUrl"]["Value"]["Fn::If"]
    # (What the HasRedirectUri branch computes is compared with the code's, URI by URI, by
    # tests/tests/template.rs through --authorize-url.)
    check(authorize[0] == "HasRedirectUri" and resource_name(authorize[2]).endswith("/authorize"), f"AuthorizeUrl: {authorize}")
    refresh_env = functions["RefreshFunction"]["Properties"]["Environment"]["Variables"]
    check(refresh_env["AUTHORIZE_URL"] == outputs["AuthorizeUrl"]["Value"], "AUTHORIZE_URL is not the AuthorizeUrl output")
    callback = outputs["CallbackUrl"]["Value"]["Fn::If"]
    check(callback[0] == "HasRedirectUri" and resource_name(callback[2]).endswith("/callback"), f"CallbackUrl: {callback}")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"template ok: {len(functions)} functions, {len(routes)} routes, {len(alarms)} alarms, least-privilege IAM (one token or a mailboxes path)")


def alarms_json(path):
    template = cfn_yaml.load(path)
    alarms = [
        {
            "alarm": name,
            "namespace": r["Properties"]["Namespace"],
            "metric": r["Properties"]["MetricName"],
            "dimensions": [d["Name"] for d in r["Properties"].get("Dimensions", [])],
        }
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "GmailOAuth"
    ]
    print(json.dumps(alarms))


def accepts(parameter, value):
    """Whether CloudFormation takes `value` for `parameter` (AllowedPattern is a Java regex
    matched against the whole value; these patterns mean the same in Python)."""
    pattern = parameter.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        return False
    return len(value) <= int(parameter.get("MaxLength", 4096))


def patterns_json(path, cases_path):
    parameters = cfn_yaml.load(path)["Parameters"]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    print(json.dumps([accepts(parameters[c["parameter"]], c["value"]) for c in cases]))


def evaluate(node, parameters):
    """The value of an intrinsic-function tree that uses only parameters (Ref, Sub, Join,
    Select, Split)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return [evaluate(n, parameters) for n in node]
    (function, argument), = node.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Sub":
        return re.sub(r"\$\{([A-Za-z]+)\}", lambda m: parameters[m.group(1)], argument)
    if function == "Fn::Join":
        return argument[0].join(evaluate(argument[1], parameters))
    if function == "Fn::Select":
        return evaluate(argument[1], parameters)[int(argument[0])]
    if function == "Fn::Split":
        return evaluate(argument[1], parameters).split(argument[0])
    raise ValueError(f"cannot evaluate {function}")


def authorize_url(path, redirect_uri):
    """The AuthorizeUrl output for a RedirectUri (the HasRedirectUri branch); the same
    expression must be used wherever the template needs that URL."""
    template = cfn_yaml.load(path)
    output = template["Outputs"]["AuthorizeUrl"]["Value"]["Fn::If"]
    assert output[0] == "HasRedirectUri", output
    env = template["Resources"]["RefreshFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUTHORIZE_URL"]["Fn::If"][1] == output[1], "AUTHORIZE_URL is computed otherwise"
    print(evaluate(output[1], {"RedirectUri": redirect_uri}))


if __name__ == "__main__":
    if sys.argv[1] == "--alarms":
        alarms_json(sys.argv[2])
    elif sys.argv[1] == "--patterns":
        patterns_json(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--authorize-url":
        authorize_url(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])
