"""`spark:` and `ray:` steps' spec values against hostile input: credentials pasted into
`spark_conf:` or `runtime_env.env_vars`, settings that would change who the job's pods run as,
sizes Spark refuses long after submission, and names that would silently replace the SparkSession.
Each is refused by `validate`, at its line, before anything runs."""

from __future__ import annotations

import pytest

from tests.helpers import issues_of

SPARK = "steps:\n  a:\n    spark: m:f\n"
FIX_CONF = "give the step the credential as an `env:` value `{secret: name, key: k}`"


@pytest.mark.parametrize(
    "key",
    [
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.session.token",
        "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net",
        "spark.hadoop.fs.azure.account.oauth2.client.secret",
        "spark.ssl.keyStorePassword",
        "spark.authenticate.secret",
    ],
)
def test_a_literal_credential_in_spark_conf_is_refused_at_its_line_without_repeating_it(key):
    issues = issues_of(SPARK + f"    spark_conf:\n      spark.sql.shuffle.partitions: 8\n      {key}: hunter2xyz\n")
    assert len(issues) == 1
    assert issues[0].startswith(f"pipe.aq.yaml:5:7: steps.a.spark_conf: `{key}` holds a credential: a spec is not")
    assert FIX_CONF in issues[0] and issues[0].endswith(f"read it from there as `{key}: ${{env.NAME}}`")
    assert "hunter2xyz" not in issues[0]


def test_a_numeric_credential_is_refused_too():
    issues = issues_of(SPARK + "    spark_conf: {spark.authenticate.secret: 12345}\n")
    assert issues and "`spark.authenticate.secret` holds a credential" in issues[0]


@pytest.mark.parametrize(
    "key, value",
    [
        # where a credential comes from, or how it is got: not the credential
        ("spark.hadoop.fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"),
        ("spark.authenticate.secret.file", "/var/run/spark/secret"),
        ("spark.hadoop.fs.azure.sas.token.provider.type", "com.example.SasProvider"),
        ("spark.io.encryption.enabled", True),
        ("spark.io.encryption.keySizeBits", 256),
        # a Kubernetes Secret named, the way to pass one
        ("spark.kubernetes.driver.secretKeyRef.AWS_SECRET_ACCESS_KEY", "aws:secret"),
        ("spark.kubernetes.executor.secrets.mysecret", "/mnt/secrets"),
        # read from the environment, which a Secret reference fills
        ("spark.hadoop.fs.s3a.secret.key", "${env.S3_SECRET}"),
        ("spark.ssl.keyPassword", "${env:KEY_PASSWORD}"),
    ],
)
def test_settings_about_credentials_and_references_to_them_are_kept(key, value):
    text = SPARK + f"    env: {{S3_SECRET: {{secret: s3, key: secret}}}}\n    spark_conf: {{{key}: {value!r}}}\n"
    text = text.replace("True", "true")
    assert issues_of(text) == []


@pytest.mark.parametrize(
    "key",
    [
        "spark.kubernetes.authenticate.driver.serviceAccountName",
        "spark.kubernetes.authenticate.executor.serviceAccountName",
        "spark.kubernetes.authenticate.submission.oauthTokenFile",
        "spark.kubernetes.driver.podTemplateFile",
        "spark.kubernetes.executor.podTemplateContainerName",
        "spark.kubernetes.driver.pod.featureSteps",
    ],
)
def test_spark_conf_may_not_change_who_the_pods_run_as(key):
    """The Spark operator passes `sparkConf` to spark-submit as `--conf`, and with no service
    account in the profile nothing overrides it: a spec would pick the namespace's most
    privileged account, or a pod template without the non-root security context."""
    issues = issues_of(SPARK + f"    spark_conf: {{{key}: x}}\n")
    assert issues == [
        f"pipe.aq.yaml:4:17: steps.a.spark_conf: `{key}` would change the identity or the security of the job's "
        "pods, which the cluster profile decides (its service account, non-root pods): remove it"
    ]


def test_a_credential_in_runtime_env_vars_is_refused_as_in_env():
    text = "steps:\n  a:\n    ray: m:f\n    runtime_env:\n      pip: [numpy]\n      env_vars: {DB_PASSWORD: hunter2}\n"
    (issue,) = issues_of(text)
    assert issue.startswith(
        "pipe.aq.yaml:5:7: steps.a.runtime_env: `runtime_env.env_vars.DB_PASSWORD` looks like a credential: "
    )
    assert FIX_CONF in issue and "hunter2" not in issue


def test_runtime_env_vars_that_ray_cannot_take_are_refused_at_validate():
    base = "steps:\n  a:\n    ray: m:f\n    runtime_env: "
    assert issues_of(base + "{env_vars: {THREADS: 4}}\n") == [
        "pipe.aq.yaml:4:18: steps.a.runtime_env: `runtime_env.env_vars.THREADS` is not text: Ray takes text values "
        "only; quote it"
    ]
    assert issues_of(base + "{env_vars: [A]}\n") == [
        "pipe.aq.yaml:4:18: steps.a.runtime_env: `runtime_env.env_vars` is a mapping of variable names to text"
    ]
    assert issues_of(base + "{env_vars: {OMP_NUM_THREADS: '4', PASSWORD_FILE: /run/pw}}\n") == []


@pytest.mark.parametrize("memory", ["0", "1", "1.5", "256Mi", "1023Mi"])
def test_a_spark_pod_too_small_for_its_heap_is_refused(memory):
    """A Spark pod's `memory:` is the pod's total: the JVM's heap and at least 384Mi beside it; Spark
    refuses a heap under 450 MiB only when the pod starts on the cluster (local mode sizes itself):
    caught at validate, at the ask, not an hour into a queue."""
    text = (
        SPARK + f"    driver: {{cpu: 1, memory: 1Gi}}\n    executors: {{instances: 2, cpu: 500m, memory: {memory}}}\n"
    )
    column = 50
    assert issues_of(text) == [
        f"pipe.aq.yaml:5:{column}: `executors` memory {memory} is too small for Spark: a Spark pod needs at least 1Gi "
        "(384Mi outside the JVM's heap, and a heap of at least 450Mi): ask for `memory: 1Gi` or more"
    ]
    (issue,) = issues_of(SPARK + f"    driver: {{memory: {memory}}}\n")
    assert issue.startswith(f"pipe.aq.yaml:4:22: `driver` memory {memory} is too small for Spark")


def test_the_least_spark_pod_and_a_small_ray_head_are_accepted():
    assert issues_of(SPARK + "    driver: {memory: 1Gi}\n    executors: {instances: 1, memory: 1Gi}\n") == []
    assert issues_of("steps:\n  a:\n    ray: m:f\n    head: {memory: 256Mi}\n") == []


def test_an_input_named_spark_would_replace_the_session_and_is_refused():
    text = "steps:\n  spark:\n    python: m:f\n  b:\n    spark: m:g\n    inputs: [spark]\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:6:13: steps.b.inputs: an input named `spark` would replace the SparkSession a spark step's "
        "function gets as `spark`: pass it as another parameter with the map form, `inputs: {events: spark}`"
    ]
    renamed = text.replace("inputs: [spark]", "inputs: {events: spark}")
    assert issues_of(renamed) == []  # the fix
    for fine in (  # a script reads AQ_INPUT_SPARK; a ray function has no `spark`
        text.replace("spark: m:g", "spark: {file: job.py}"),
        text.replace("spark: m:g", "ray: m:g"),
    ):
        assert issues_of(fine) == []


def test_an_args_entry_named_spark_is_refused():
    assert issues_of(SPARK + "    args: {spark: 1}\n") == [
        "pipe.aq.yaml:4:11: steps.a.args: an `args:` entry named `spark` would replace the SparkSession a spark "
        "step's function gets as `spark`: rename the entry and the function's parameter"
    ]
