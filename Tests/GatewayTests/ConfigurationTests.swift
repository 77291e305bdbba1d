import GatewayServer
import Testing

/// Configuration resolution, without I/O: files come from a dictionary.
@Suite("Configuration")
struct ConfigurationTests {
    struct MissingFile: Error {}

    static func resolve(flags: [String: String] = [:], env: [String: String] = [:], file: String? = nil, files: [String: String] = [:])
        throws(ConfigurationError) -> GatewayConfiguration
    {
        var all = files
        if let file { all["/etc/sensgate.yaml"] = file }
        return try ConfigurationLoader.resolve(
            flags: flags, environment: env, configFile: file == nil ? nil : "/etc/sensgate.yaml",
            readFile: { path in
                guard let text = all[path] else { throw MissingFile() }
                return text
            })
    }

    @Test("flags win over environment, environment over the YAML file, the file over defaults")
    func precedence() throws {
        let yaml = """
            listen: 0.0.0.0:9000
            upstream: http://yaml.example
            access-key: YAMLKEY
            secret-key: yaml-secret
            upstream-timeout: 7
            sms-service-id: ncp:sms:kr:1:yaml
            """
        let fromFile = try Self.resolve(file: yaml)
        #expect(fromFile.listenHost == "0.0.0.0" && fromFile.listenPort == 9000)
        #expect(fromFile.upstream == "http://yaml.example")
        #expect(fromFile.accessKey == "YAMLKEY")
        #expect(fromFile.upstreamTimeout == .seconds(7))
        #expect(fromFile.smsServiceID == "ncp:sms:kr:1:yaml")
        #expect(fromFile.upstreamConnectTimeout == .seconds(3))

        let withEnv = try Self.resolve(env: ["SENSGATE_LISTEN": "127.0.0.1:9100", "NCP_ACCESS_KEY": "ENVKEY", "SENSGATE_UPSTREAM_TIMEOUT": "2.5"], file: yaml)
        #expect(withEnv.listenPort == 9100)
        #expect(withEnv.accessKey == "ENVKEY")
        #expect(withEnv.upstreamTimeout == .milliseconds(2500))
        #expect(withEnv.upstream == "http://yaml.example")

        let withFlags = try Self.resolve(flags: ["listen": "127.0.0.1:9200", "access-key": "FLAGKEY"], env: ["SENSGATE_LISTEN": "127.0.0.1:9100"], file: yaml)
        #expect(withFlags.listenPort == 9200)
        #expect(withFlags.accessKey == "FLAGKEY")
    }

    @Test("defaults are the spec's")
    func defaults() throws {
        let configuration = try Self.resolve(env: ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"])
        #expect(configuration.listenHost == "127.0.0.1" && configuration.listenPort == 8080)
        #expect(configuration.upstream == "https://sens.apigw.ntruss.com")
        #expect(configuration.upstreamTimeout == .seconds(10))
        #expect(configuration.smsServiceID == nil)
    }

    @Test("a secret key file is read and trimmed, and beats a secret key from a lower layer")
    func secretKeyFile() throws {
        let configuration = try Self.resolve(
            flags: ["secret-key-file": "/run/secret"], env: ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "env-secret"],
            files: ["/run/secret": "  file-secret\n"])
        #expect(configuration.secretKeyFile == "/run/secret")
        #expect(String(describing: configuration.secretKey) == "<redacted>")
        #expect(!String(describing: configuration).contains("file-secret"))
        #expect(!String(describing: configuration).contains("env-secret"))
    }

    @Test("upstream-ca-file is checked at start-up: it must be readable and hold a PEM certificate")
    func upstreamCAFile() throws {
        let env = ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"]
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let configured = try Self.resolve(flags: ["upstream-ca-file": "/etc/ca.pem"], env: env, files: ["/etc/ca.pem": pem])
        #expect(configured.upstreamCAFile == "/etc/ca.pem")
        #expect(try Self.resolve(env: env).upstreamCAFile == nil)
        #expect(try Self.resolve(env: env.merging(["SENSGATE_UPSTREAM_CA_FILE": "/etc/ca.pem"]) { $1 }, files: ["/etc/ca.pem": pem])
            .upstreamCAFile == "/etc/ca.pem")
        #expect(throws: ConfigurationError.self) { try Self.resolve(flags: ["upstream-ca-file": "/missing.pem"], env: env) }
        let notPEM = #expect(throws: ConfigurationError.self) {
            try Self.resolve(flags: ["upstream-ca-file": "/etc/key.pem"], env: env, files: ["/etc/key.pem": "-----BEGIN PRIVATE KEY-----\n"])
        }
        #expect(notPEM?.description.contains("no PEM certificate") == true)
    }

    static let bad: [([String: String], String)] = [
        (["NCP_SECRET_KEY": "s"], "access key"),
        (["NCP_ACCESS_KEY": "AK"], "secret key"),
        (["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_LISTEN": "8080"], "listen"),
        (["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_UPSTREAM": "https://sens.example/path"], "upstream"),
        (["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_UPSTREAM_TIMEOUT": "-1"], "upstream-timeout"),
        (["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_SMS_SERVICE_ID": "bad id/../x"], "sms-service-id"),
        (["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_LOG_LEVEL": "loud"], "log-level"),
        (["NCP_ACCESS_KEY": "A\u{0A}K", "NCP_SECRET_KEY": "s"], "access key"),
        (["NCP_ACCESS_KEY": "AK", "SENSGATE_SECRET_KEY_FILE": "/missing"], "secret key file"),
    ]

    @Test("a missing or bad setting is one clear error naming it", arguments: bad)
    func badSetting(_ env: [String: String], _ mention: String) {
        #expect {
            _ = try Self.resolve(env: env)
        } throws: { error in
            "\(error)".contains(mention)
        }
    }

    @Test("an unknown key or a non-mapping in the YAML file is an error")
    func badYAML() {
        #expect(throws: ConfigurationError.self) { _ = try Self.resolve(env: ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], file: "listn: x") }
        #expect(throws: ConfigurationError.self) { _ = try Self.resolve(env: ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], file: "- a\n- b") }
        #expect(throws: ConfigurationError.self) { _ = try Self.resolve(env: ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], file: "listen: [") }
    }

    @Test("the secret key is never a flag")
    func secretNotAFlag() {
        #expect(throws: ConfigurationError.self) { _ = try Self.resolve(flags: ["secret-key": "x"], env: ["NCP_ACCESS_KEY": "AK"]) }
    }
}
