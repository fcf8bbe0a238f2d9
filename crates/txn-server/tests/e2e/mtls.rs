//! Mutual TLS: only a client with a certificate from the configured CA gets
//! in, and the client checks the server's certificate and name.

use std::time::Duration;

use kvs_proto::api::DurableSequenceRequest;
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_testkit::certs::Certs;
use kvs_testkit::stack::Stack;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn pem(certs: &Certs, name: &str) -> Vec<u8> {
    std::fs::read(certs.path(name)).unwrap()
}

/// Asks txn-server one question over `endpoint`; Ok if it answered.
async fn ask(endpoint: Endpoint) -> Result<u64, String> {
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = TransactionServiceClient::new(channel);
    let request = DurableSequenceRequest {
        writer_id: "probe".into(),
        fence: 0,
    };
    client
        .durable_sequence(request)
        .await
        .map(|r| r.into_inner().durable_sequence)
        .map_err(|e| e.to_string())
}

fn tls(stack: &Stack, config: ClientTlsConfig) -> Endpoint {
    Endpoint::from_shared(format!("https://{}", stack.txn_addr()))
        .unwrap()
        .tls_config(config)
        .unwrap()
}

#[tokio::test]
async fn only_a_client_certificate_from_the_configured_ca_is_accepted() {
    let stack = Stack::file().await;
    let ca = Certificate::from_pem(pem(&stack.certs, "ca.crt"));
    let own = Identity::from_pem(
        pem(&stack.certs, "client.crt"),
        pem(&stack.certs, "client.key"),
    );
    let right = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(own)
        .domain_name("localhost");
    assert_eq!(ask(tls(&stack, right)).await, Ok(0));

    let no_cert = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .domain_name("localhost");
    assert!(
        ask(tls(&stack, no_cert)).await.is_err(),
        "a client without a certificate got in"
    );

    let stranger = Certs::new();
    let foreign = Identity::from_pem(pem(&stranger, "client.crt"), pem(&stranger, "client.key"));
    let other_ca = ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(foreign)
        .domain_name("localhost");
    assert!(
        ask(tls(&stack, other_ca)).await.is_err(),
        "a certificate from another CA got in"
    );

    let plaintext = Endpoint::from_shared(format!("http://{}", stack.txn_addr())).unwrap();
    assert!(ask(plaintext).await.is_err(), "a plaintext client got in");
}

#[tokio::test]
async fn the_client_refuses_a_server_with_the_wrong_name_or_an_unknown_ca() {
    let stack = Stack::file().await;
    let own = || {
        Identity::from_pem(
            pem(&stack.certs, "client.crt"),
            pem(&stack.certs, "client.key"),
        )
    };
    let ca = Certificate::from_pem(pem(&stack.certs, "ca.crt"));
    let wrong_name = ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(own())
        .domain_name("txn.example");
    assert!(
        ask(tls(&stack, wrong_name)).await.is_err(),
        "accepted a server certificate for another name"
    );

    let stranger = Certs::new();
    let unknown_ca = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem(&stranger, "ca.crt")))
        .identity(own())
        .domain_name("localhost");
    assert!(
        ask(tls(&stack, unknown_ca)).await.is_err(),
        "trusted a server signed by an unknown CA"
    );
}

#[tokio::test]
async fn a_flood_of_failed_handshakes_is_logged_at_most_once_a_second() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let stack = Stack::file().await;
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let mut tcp = tokio::net::TcpStream::connect(stack.txn_addr())
            .await
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        // The server drops the connection once the handshake failed.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    }
    let took = started.elapsed();
    let txn = stack.txn.as_ref().unwrap();
    kvs_testkit::wait_until("a refusal logged", Duration::from_secs(30), || {
        txn.output().contains("refused a client")
    })
    .await;
    let output = txn.output();
    let logged = output.matches("refused a client").count();
    assert!(
        logged as u64 <= took.as_secs() + 1,
        "{logged} lines for 40 refusals in {took:?}:\n{output}"
    );
}
