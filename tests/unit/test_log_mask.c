/* Credential masking: a table of values (secrets in messages, URLs,
 * connection strings, tokens, and near-misses that must stay), secret keys,
 * nested fields, contexts, extensions, and switching masking off. */
#include "test_log_util.h"

static const struct {
    const char *in;
    const char *out;
} value_cases[] = {
    /* Bearer and Basic credentials */
    {"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123def",
     "Authorization: Bearer ***"},
    {"header bearer abcdef1234567890 sent", "header bearer *** sent"},
    {"Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"},
    {"Basic authentication is disabled", "Basic authentication is disabled"}, /* near-miss */
    {"Basic YWJjZGVmZ2g=", "Basic YWJjZGVmZ2g="}, /* base64 without user:pass: near-miss */
    {"Bearer of bad news", "Bearer of bad news"}, /* near-miss */
    /* GitHub tokens */
    {"token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 leaked", "token ghp_*** leaked"},
    {"gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_***"},
    {"pat=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "pat=github_pat_***"},
    {"branch ghp_short", "branch ghp_short"}, /* near-miss */
    {"xghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "xghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"},
    /* AWS access key IDs */
    {"key AKIAIOSFODNN7EXAMPLE used", "key AKIA*** used"},
    {"ASIAY34FZKBOKMUTVV7A", "ASIA***"},
    {"AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPL"},     /* near-miss: 15 after the prefix */
    {"AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX"}, /* near-miss: 17 */
    /* JWTs */
    {"jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c end",
     "jwt *** end"},
    {"header eyJhbGciOiJIUzI1NiJ9 only", "header eyJhbGciOiJIUzI1NiJ9 only"}, /* near-miss */
    /* Passwords in URLs */
    {"clone https://bob:s3cr3t@github.com/org/repo.git",
     "clone https://bob:***@github.com/org/repo.git"},
    {"postgres://app:pa:ss@db:5432/x", "postgres://app:***@db:5432/x"},
    {"redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"},
    {"https://github.com:443/org", "https://github.com:443/org"}, /* near-miss: port */
    {"https://bob@github.com/org", "https://bob@github.com/org"}, /* near-miss: no password */
    {"see http://host/a:b@c", "see http://host/a:b@c"},           /* near-miss: @ in the path */
    /* key=value pairs and connection strings */
    {"host=db port=5432 password=hunter2 dbname=app", "host=db port=5432 password=*** dbname=app"},
    {"Server=x;Database=y;User Id=u;Password=p@ss;", "Server=x;Database=y;User Id=u;Password=***;"},
    {"GET /x?access_token=abc123&page=2", "GET /x?access_token=***&page=2"},
    {"pwd='a b c' next", "pwd='***' next"},
    {"api_key=sk-12345 ok", "api_key=*** ok"},
    {"X-Api-Key=abc", "X-Api-Key=***"},
    {"Cookie: session=abc123; theme=dark", "Cookie: session=***; theme=dark"},
    {"password=***", "password=***"}, /* already masked */
    {"passenger=3 author=bob tokenizer=bpe",
     "passenger=3 author=bob tokenizer=bpe"}, /* near-miss */
    {"password= empty", "password= empty"},
    {"a==b", "a==b"},
    {"", ""},
    /* bytes that are not UTF-8 around a secret */
    {"\xffpassword=x\xfe", "\xffpassword=***"},
};

TEST(test_log_mask_value_table)
{
    ASSERT_GE(sizeof value_cases / sizeof value_cases[0], 25);
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        sonde_buf b;
        sonde_buf_init(&b);
        int rc = sonde_log_mask(value_cases[i].in, strlen(value_cases[i].in), &b);
        const char *got = b.data ? b.data : "";
        int want_masked = strcmp(value_cases[i].in, value_cases[i].out) != 0;
        if (strcmp(got, value_cases[i].out) != 0 || rc != want_masked) {
            TEST_FAIL_AT("case %zu: mask(\"%s\")\n   got \"%s\" (rc %d)\n  want \"%s\" (rc %d)", i,
                         value_cases[i].in, got, rc, value_cases[i].out, want_masked);
        }
        sonde_buf_free(&b);
    }
}

static const char *const secret_keys[] = {
    "password",
    "PASSWORD",
    "passwd",
    "db_password",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "githubToken",
    "api_key",
    "apikey",
    "API-KEY",
    "X-Api-Key",
    "authorization",
    "Authorization",
    "cookie",
    "set-cookie",
    "session",
    "session_id",
    "sessionId",
    "private_key",
    "privateKey",
    "credentials",
    "passphrase",
    "aws_secret_access_key",
    "api_key_id",
    "pwd",
    "Proxy-Authorization",
};
static const char *const plain_keys[] = {
    "author",   "tokenizer", "secretary", "monkey",       "keyboard",  "passenger", "sessionize",
    "username", "user_id",   "",          "organization", "operation", "key",       "api",
};

TEST(test_log_mask_secret_keys_are_case_and_separator_insensitive)
{
    for (size_t i = 0; i < sizeof secret_keys / sizeof secret_keys[0]; i++)
        if (!sonde_log_mask_key_is_secret(secret_keys[i], strlen(secret_keys[i])))
            TEST_FAIL_AT("key \"%s\" should be secret", secret_keys[i]);
    for (size_t i = 0; i < sizeof plain_keys / sizeof plain_keys[0]; i++)
        if (sonde_log_mask_key_is_secret(plain_keys[i], strlen(plain_keys[i])))
            TEST_FAIL_AT("key \"%s\" should not be secret", plain_keys[i]);
    ASSERT_EQ(sonde_log_mask_key_is_secret(NULL, 0), 0);
}

static sonde_logger *lg(void)
{
    return sonde_logger_get("mask.test");
}

TEST(test_log_mask_fields_messages_and_nested_values_in_lines)
{
    capture_reset();
    SONDE_LOG(lg(), INFO, "login with password=hunter2 via https://bob:hunter3@example.com/",
              SONDE_STR("user", "bob"), SONDE_STR("Password", "hunter4"),
              SONDE_INT("api_key", 123456), SONDE_OBJECT("db"), SONDE_STR("host", "db1"),
              SONDE_STR("db_password", "hunter5"), SONDE_STR("dsn", "host=db1 password=hunter6"),
              SONDE_CLOSE(), SONDE_OBJECT("credentials"), SONDE_STR("user", "u"),
              SONDE_STR("pass", "hunter7"), SONDE_CLOSE(), SONDE_LIST("urls"),
              SONDE_STR(NULL, "https://x:hunter8@h/"), SONDE_STR(NULL, "Bearer hunter9hunter9"),
              SONDE_CLOSE(), SONDE_STR("note", "author=bob"));
    const char *l = capture_last();
    for (int i = 2; i <= 9; i++) {
        char s[16];
        snprintf(s, sizeof s, "hunter%d", i);
        ASSERT_NOT_CONTAINS(l, s);
    }
    ASSERT_JQ(l, ".message", "login with password=*** via https://bob:***@example.com/");
    ASSERT_JQ(
        l,
        ".fields | [.user, .Password, .api_key, .db.host, .db.db_password, .db.dsn, .credentials, "
        ".urls[0], .urls[1], .note] | join(\"|\")",
        "bob|***|***|db1|***|host=db1 password=***|***|https://x:***@h/|Bearer ***|author=bob");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_mask_context_fields_and_console_lines)
{
    capture_reset();
    {
        SONDE_LOG_CONTEXT(SONDE_STR("operation", "sync"), SONDE_STR("token", "hunter1"),
                          SONDE_STR("remote", "https://u:hunter2@git.example.com"));
        SONDE_LOG(lg(), WARNING, "ctx");
    }
    const char *l = capture_last();
    ASSERT_NOT_CONTAINS(l, "hunter");
    ASSERT_JQ(l, ".correlation | [.operation, .token, .remote] | join(\"|\")",
              "sync|***|https://u:***@git.example.com");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_mask_is_extensible)
{
    capture_reset();
    ASSERT_EQ(sonde_log_mask_add_key(""), SONDE_EINVAL);
    ASSERT_EQ(sonde_log_mask_add_key("--"), SONDE_EINVAL);
    ASSERT_OK(sonde_log_mask_add_key("Card-Number"));
    ASSERT(sonde_log_mask_key_is_secret("card_number", 11));
    ASSERT(sonde_log_mask_key_is_secret("billingCardNumber", 17));
    ASSERT_OK(sonde_log_mask_add_prefix("sk_live_", 16));
    ASSERT_EQ(sonde_log_mask_add_prefix("", 1), SONDE_EINVAL);
    ASSERT_OK(sonde_log_mask_add_regex("[0-9]{3}-[0-9]{2}-[0-9]{4}"));
    ASSERT_EQ(sonde_log_mask_add_regex("(unclosed"), SONDE_EPARSE);
    SONDE_LOG(lg(), INFO, "charge sk_live_abcdefghijklmnop1234 for ssn 123-45-6789 ok",
              SONDE_STR("card_number", "4111111111111111"), SONDE_STR("short", "sk_live_abc"));
    const char *l = capture_last();
    ASSERT_JQ(l, ".message", "charge sk_live_*** for ssn *** ok");
    ASSERT_JQ(l, ".fields.card_number", "***");
    ASSERT_JQ(l, ".fields.short", "sk_live_abc"); /* shorter than the minimum */
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_mask_can_be_switched_off)
{
    capture_reset();
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.masking = -1;
    ASSERT_OK(sonde_log_configure(&o));
    SONDE_LOG(lg(), INFO, "password=visible", SONDE_STR("token", "visible2"));
    ASSERT_JQ(capture_last(), "[.message, .fields.token] | join(\"|\")",
              "password=visible|visible2");
    o.masking = 0;
    ASSERT_OK(sonde_log_configure(&o));
    SONDE_LOG(lg(), INFO, "password=hidden");
    ASSERT_JQ(capture_last(), ".message", "password=***");
}

TEST_MAIN()
