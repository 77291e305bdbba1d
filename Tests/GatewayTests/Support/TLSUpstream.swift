import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import SENSMock

/// The project's SENS mock behind TLS, as SENS is reached in production: HTTP/2 when ALPN agrees on it, HTTP/1.1
/// otherwise. Test-only, so the mock itself (which `sensgate demo` also runs) stays cleartext and BoringSSL-free.
struct TLSUpstream: Sendable {
    /// Which server certificate the front presents; both are signed by ``TestCertificates/authority``.
    enum Certificate: Sendable {
        /// For `localhost` and `127.0.0.1`: what sensgate connects to.
        case localhost
        /// For another host name: a trusted issuer, the wrong host.
        case otherName
    }

    /// How a test gateway reaches its mock through TLS.
    struct Setup: Sendable {
        var certificate: Certificate = .localhost
        /// ALPN protocols the front offers, in preference order.
        var protocols: [String] = ["h2", "http/1.1"]
        /// Whether the gateway is given the test CA (`upstream-ca-file`); without it only the system's CAs count.
        var trustTestAuthority = true
    }

    let channel: any Channel
    let port: Int

    static func start(mock: SENSMock, setup: Setup) async throws -> TLSUpstream {
        let (pem, key) = switch setup.certificate {
        case .localhost: (TestCertificates.localhost, TestCertificates.localhostKey)
        case .otherName: (TestCertificates.otherName, TestCertificates.otherNameKey)
        }
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem)))
        tls.applicationProtocols = setup.protocols
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                mock.connectionAccepted()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }.flatMap {
                    channel.configureHTTP2SecureUpgrade(
                        h2ChannelConfigurator: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                                    mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                                ) { stream in
                                    stream.eventLoop.makeCompletedFuture {
                                        try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                        try stream.pipeline.syncOperations.addHandler(mock.makeRequestHandler())
                                    }
                                }
                            }
                        },
                        http1ChannelConfigurator: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                                try channel.pipeline.syncOperations.addHandler(mock.makeRequestHandler())
                            }
                        })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TLSUpstream(channel: channel, port: channel.localAddress?.port ?? 0)
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// The test CA in a file of its own, for `upstream-ca-file`.
    static func authorityFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sensgate-test-ca-\(UUID().uuidString).pem").path
        try TestCertificates.authority.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
