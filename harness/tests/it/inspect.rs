//! Mail inspection: real resetkit emails pass every check; hand-made broken
//! emails fail exactly the check that names their fault; nothing panics.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};
use resetkit::ResetServiceBuilder;
use resetkit::prelude::*;
use resetkit_harness::fake_smtp::{CapturedMessage, FakeSmtpServer};
use resetkit_harness::inspect::{
    self, Check, Finding, InspectError, LinkExpectation, MailExpectation, ParsedMail, TokenLocation,
    html_links, text_links,
};
use resetkit_smtp::{SmtpConfig, SmtpMailer, TlsMode};

const WAIT: Duration = Duration::from_secs(3);
/// 43 characters: 256 bits, URL-safe base64, no padding (like resetkit's).
const TOKEN: &str = "h7WiQZg7jNry1En3RV-1Jh-W3E6-PsBN5uoE3wwN6Ig";
/// 32 bytes' worth of a second token.
const OTHER_TOKEN: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx";
const TARGET: &str = "https://app.example.test/reset";
const DENY: &str = "https://app.example.test/reset/deny";

fn reset_link(token: &str) -> String {
    format!("{TARGET}?token={token}")
}

fn expectation() -> MailExpectation {
    MailExpectation::new(LinkExpectation::parse(TARGET).unwrap())
        .from("noreply@example.test")
        .to("alice@example.com")
}

/// The checks that failed, in report order.
fn failing(findings: &[Finding]) -> Vec<Check> {
    findings.iter().filter(|f| !f.ok).map(|f| f.check).collect()
}

fn finding(findings: &[Finding], check: Check) -> &Finding {
    findings.iter().find(|f| f.check == check).unwrap()
}

// ---------------------------------------------------------------------------
// Hand-made messages

/// A reset email written by hand (7bit), close to what resetkit sends, that
/// each test breaks in one way.
#[derive(Clone)]
struct Draft {
    headers: Vec<(String, String)>,
    text: Option<String>,
    html: Option<String>,
}

fn text_body(reset: &str, deny: &str) -> String {
    format!(
        "Hello alice,\r\n\r\nTo choose a new password, open this link:\r\n\r\n{reset}\r\n\r\n\
         If you did not ask for this, cancel the link:\r\n\r\n{deny}\r\n\r\n-- \r\nExample\r\n"
    )
}

fn html_body(reset: &str, deny: &str) -> String {
    format!(
        "<!doctype html>\r\n<html><body><p>Hello alice,</p>\r\n\
         <p><a href=\"{}\">Choose a new password</a></p>\r\n\
         <p><a href=\"{}\">This wasn't me</a></p></body></html>\r\n",
        reset.replace('&', "&amp;"),
        deny.replace('&', "&amp;")
    )
}

impl Draft {
    fn good() -> Self {
        Self::with_links(&reset_link(TOKEN), &reset_link(TOKEN))
    }

    /// `text_link` in the text part, `html_link` in the HTML part, each with
    /// the deny link carrying the same token (as resetkit does).
    fn with_links(text_link: &str, html_link: &str) -> Self {
        let deny = format!("{DENY}?token={TOKEN}");
        Draft {
            headers: [
                ("From", "\"Example Support\" <noreply@example.test>"),
                ("To", "alice@example.com"),
                ("Subject", "Reset your Example password"),
                ("Message-ID", "<5f1e.resetkit@example.test>"),
                ("Date", "Mon, 01 Jan 2024 10:00:00 +0000"),
                ("Auto-Submitted", "auto-generated"),
                ("MIME-Version", "1.0"),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
            text: Some(text_body(text_link, &deny)),
            html: Some(html_body(html_link, &deny)),
        }
    }

    /// Replaces the header (or adds it).
    fn header(mut self, name: &str, value: &str) -> Self {
        self = self.without(name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn add_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn text(mut self, text: Option<String>) -> Self {
        self.text = text;
        self
    }

    fn html(mut self, html: Option<String>) -> Self {
        self.html = html;
        self
    }

    fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let part = |ctype: &str, body: &str| {
            format!("Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{body}")
        };
        match (&self.text, &self.html) {
            (Some(text), Some(html)) => {
                out.push_str("Content-Type: multipart/alternative; boundary=\"BOUNDARY\"\r\n\r\n");
                out.push_str(&format!("--BOUNDARY\r\n{}\r\n", part("text/plain", text)));
                out.push_str(&format!("--BOUNDARY\r\n{}\r\n", part("text/html", html)));
                out.push_str("--BOUNDARY--\r\n");
            }
            (Some(body), None) => out.push_str(&part("text/plain", body)),
            (None, Some(body)) => out.push_str(&part("text/html", body)),
            (None, None) => out.push_str("\r\n"),
        }
        out.into_bytes()
    }

    fn parse(&self) -> ParsedMail {
        ParsedMail::parse(&self.render()).unwrap()
    }

    fn check(&self) -> Vec<Finding> {
        inspect::check(&self.parse(), &expectation())
    }
}

/// The good draft, built by lettre with the given transfer encoding for both parts.
fn lettre_draft(encoding: ContentTransferEncoding) -> Vec<u8> {
    let draft = Draft::good();
    let part = |ctype: ContentType, body: &str| {
        SinglePart::builder()
            .header(ctype)
            .header(encoding)
            .body(body.to_owned())
    };
    lettre::Message::builder()
        .from("Example Support <noreply@example.test>".parse().unwrap())
        .to("alice@example.com".parse().unwrap())
        .subject("Réinitialiser votre mot de passe")
        .message_id(Some("<5f1e.resetkit@example.test>".into()))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, draft.text.as_deref().unwrap()))
                .singlepart(part(ContentType::TEXT_HTML, draft.html.as_deref().unwrap())),
        )
        .unwrap()
        .formatted()
}

// ---------------------------------------------------------------------------
// Real resetkit emails, sent through SmtpMailer to the fake SMTP server

async fn real_email(
    accounts: &[Account],
    configure: impl FnOnce(ResetServiceBuilder) -> ResetServiceBuilder,
) -> (ResetService, CapturedMessage) {
    let server = FakeSmtpServer::start().unwrap();
    let config = SmtpConfig::builder("127.0.0.1")
        .port(server.port())
        .tls(TlsMode::None)
        .connect_timeout(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let directory = InMemoryAccounts::default();
    for account in accounts {
        directory.insert(account.clone());
    }
    let sender =
        FixedSender::new(Mailbox::new(Some("Example Support Ünïcode"), "noreply@example.test").unwrap())
            .with_reply_to(Mailbox::address_only("help@example.test").unwrap());
    let builder = ResetService::builder()
        .base_url("https://app.example.test")
        .site_name("Example")
        .accounts(Arc::new(directory))
        .tokens(Arc::new(InMemoryTokenStore::default()))
        .events(Arc::new(InMemoryEventLog::default()))
        .mailer(Arc::new(SmtpMailer::new(config).unwrap()))
        .sender(Arc::new(sender))
        .hasher(Arc::new(Argon2Hasher::fast_insecure_for_tests()));
    let service = configure(builder).build().unwrap();
    service
        .request("alice@example.com", &RequestContext::default())
        .await
        .unwrap();
    let message = server
        .wait_for(|m| m.has_recipient("alice@example.com"), WAIT)
        .await
        .unwrap();
    (service, message)
}

fn alice() -> Account {
    Account::new("1", "alice", "alice@example.com")
}

#[tokio::test]
async fn a_real_resetkit_email_passes_every_check_and_its_token_opens_the_reset_page() {
    let (service, message) = real_email(&[alice()], |b| b).await;
    let mail = ParsedMail::parse(&message.data).unwrap();
    let findings = inspect::check(&mail, &expectation());
    assert!(failing(&findings).is_empty(), "{findings:#?}\n{}", mail.raw);
    assert_eq!(findings.len(), 14, "every check ran");

    assert_eq!(mail.from, ["noreply@example.test"]);
    assert_eq!(mail.to, ["alice@example.com"]);
    assert_eq!(mail.reply_to, ["help@example.test"]);
    assert_eq!(mail.header("auto-submitted"), Some("auto-generated"));
    assert!(mail.date.is_some());
    // lettre wraps the long link with quoted-printable soft breaks; the
    // parser undoes them.
    assert!(mail.raw.contains("quoted-printable"), "{}", mail.raw);

    let token = inspect::reset_token(&mail, &expectation().link).unwrap();
    assert_eq!(token.len(), 43);
    service.inspect(&token).await.unwrap();

    let links = inspect::find_reset_links(&mail, &expectation().link);
    assert_eq!(links.len(), 1, "the deny link is not a reset link: {links:#?}");
    assert!(links[0].in_text && links[0].in_html && !links[0].relative);
    assert_eq!(links[0].token.as_deref(), Some(token.as_str()));
}

#[tokio::test]
async fn a_real_email_with_the_token_in_the_fragment_passes_when_the_fragment_is_expected() {
    let (service, message) = real_email(&[alice()], |b| b.token_placement(TokenPlacement::Fragment)).await;
    let mail = ParsedMail::parse(&message.data).unwrap();
    let mut exp = expectation();
    exp.link = exp.link.placement(TokenPlacement::Fragment);
    assert_eq!(exp.link.placement, TokenLocation::Fragment("token".into()));
    let findings = inspect::check(&mail, &exp);
    assert!(failing(&findings).is_empty(), "{findings:#?}");
    let token = inspect::reset_token(&mail, &exp.link).unwrap();
    service.inspect(&token).await.unwrap();

    // Expecting the query instead: the token is not where it should be.
    let findings = inspect::check(&mail, &expectation());
    assert_eq!(failing(&findings), [Check::TokenShape], "{findings:#?}");
}

#[tokio::test]
async fn a_real_combined_email_for_a_shared_address_has_one_reset_link_per_account() {
    let bob = Account::new("2", "bob", "alice@example.com");
    let (service, message) = real_email(&[alice(), bob], |b| {
        b.duplicate_email_policy(DuplicateEmailPolicy::CombinedEmail)
    })
    .await;
    let mail = ParsedMail::parse(&message.data).unwrap();
    let links = inspect::find_reset_links(&mail, &expectation().link);
    assert_eq!(links.len(), 2, "{links:#?}");
    for link in &links {
        assert!(link.in_text && link.in_html);
        service.inspect(link.token.as_deref().unwrap()).await.unwrap();
    }
    // "Exactly one reset link" is a single-account rule; everything else holds.
    let findings = inspect::check(&mail, &expectation());
    assert_eq!(failing(&findings), [Check::OneResetLink], "{findings:#?}");
    assert!(inspect::reset_token(&mail, &expectation().link).is_err());
}

// ---------------------------------------------------------------------------
// Hand-made emails: each fault fails its own check

#[test]
fn the_hand_made_baseline_passes_every_check() {
    let findings = Draft::good().check();
    assert!(failing(&findings).is_empty(), "{findings:#?}");
    assert_eq!(
        inspect::reset_token(&Draft::good().parse(), &expectation().link).unwrap(),
        TOKEN
    );
}

#[test]
fn a_link_to_another_host_fails_link_matches_base_and_leaks_the_token() {
    let evil = format!("https://evil.example/reset?token={TOKEN}");
    let findings = Draft::with_links(&evil, &evil).check();
    assert_eq!(
        failing(&findings),
        [Check::LinkMatchesBase, Check::TokenStaysOnSite],
        "{findings:#?}"
    );
    let f = finding(&findings, Check::LinkMatchesBase);
    assert!(
        f.expected.contains(TARGET) && f.actual.contains("evil.example"),
        "{f}"
    );
    assert!(f.to_string().starts_with("[FAIL] link_matches_base"));
}

#[test]
fn links_with_the_wrong_scheme_port_or_path_fail_link_matches_base() {
    let http = format!("http://app.example.test/reset?token={TOKEN}");
    let port = format!("https://app.example.test:8443/reset?token={TOKEN}");
    for link in [&http, &port] {
        let findings = Draft::with_links(link, link).check();
        assert_eq!(
            failing(&findings),
            [Check::LinkMatchesBase, Check::TokenStaysOnSite],
            "{link}"
        );
    }
    let slash = format!("https://app.example.test/reset/?token={TOKEN}");
    let userinfo = format!("https://user@app.example.test/reset?token={TOKEN}");
    for link in [&slash, &userinfo] {
        let findings = Draft::with_links(link, link).check();
        assert_eq!(
            failing(&findings),
            [Check::LinkMatchesBase],
            "{link}: {findings:#?}"
        );
    }
}

#[test]
fn two_different_reset_links_fail_one_reset_link() {
    let two = format!("{}\r\n\r\n{}", reset_link(TOKEN), reset_link(OTHER_TOKEN));
    let html = format!(
        "<a href=\"{}\">one</a> <a href=\"{}\">two</a>",
        reset_link(TOKEN),
        reset_link(OTHER_TOKEN)
    );
    let draft = Draft::good().text(Some(text_body(&two, DENY))).html(Some(html));
    let findings = draft.check();
    assert_eq!(failing(&findings), [Check::OneResetLink], "{findings:#?}");
    let f = finding(&findings, Check::OneResetLink);
    assert!(
        f.actual.starts_with("2 reset link(s)") && f.actual.contains(OTHER_TOKEN),
        "{f}"
    );
    let err = inspect::reset_token(&draft.parse(), &expectation().link).unwrap_err();
    assert_eq!(failing(&err), [Check::OneResetLink]);
}

#[test]
fn a_text_link_that_differs_from_the_html_link_fails_same_link_both_parts() {
    let findings = Draft::with_links(&reset_link(TOKEN), &reset_link(OTHER_TOKEN)).check();
    let failed = failing(&findings);
    assert!(failed.contains(&Check::SameLinkBothParts), "{findings:#?}");
    assert!(failed.contains(&Check::OneResetLink));
    let f = finding(&findings, Check::SameLinkBothParts);
    assert!(
        f.actual
            .contains(&format!("HTML part: `{}`", reset_link(OTHER_TOKEN))),
        "{f}"
    );
}

#[test]
fn a_link_that_does_not_stand_alone_on_its_line_fails_link_on_own_line() {
    for line in [
        format!("Click {} now", reset_link(TOKEN)),
        format!("{}.", reset_link(TOKEN)),
        format!("Link: {}", reset_link(TOKEN)),
    ] {
        let draft = Draft::good().text(Some(format!("Hello,\r\n\r\n{line}\r\n")));
        let findings = draft.check();
        assert_eq!(
            failing(&findings),
            [Check::LinkOnOwnLine],
            "{line}: {findings:#?}"
        );
        assert!(finding(&findings, Check::LinkOnOwnLine).actual.contains(&line));
    }
    // Indentation and angle brackets are fine: the URL is still copied whole.
    for line in [
        format!("    {}  ", reset_link(TOKEN)),
        format!("<{}>", reset_link(TOKEN)),
    ] {
        let draft = Draft::good().text(Some(format!("Hello,\r\n\r\n{line}\r\n")));
        assert!(failing(&draft.check()).is_empty(), "{line}");
    }
}

#[test]
fn short_tokens_fail_token_shape() {
    // 8 random bytes: 11 characters, 64 bits.
    let short = reset_link("AAECAwQFBgc");
    let findings = Draft::with_links(&short, &short).check();
    assert_eq!(failing(&findings), [Check::TokenShape], "{findings:#?}");
    assert!(finding(&findings, Check::TokenShape).actual.contains("64 bits"));
    // Exactly 128 bits (22 characters) is enough by default; 256 can be required.
    let ok = reset_link("AAECAwQFBgcICQoLDA0ODw");
    let draft = Draft::with_links(&ok, &ok);
    assert!(failing(&draft.check()).is_empty());
    let strict = LinkExpectation::parse(TARGET).unwrap().min_token_bits(256);
    assert_eq!(
        failing(&inspect::check_links(&draft.parse(), &strict)),
        [Check::TokenShape]
    );
}

#[test]
fn padded_or_wrong_alphabet_tokens_fail_token_shape() {
    let cases = [
        (format!("{TOKEN}="), "padded"),
        (format!("{TOKEN}%3D"), "padded"),
        (TOKEN.replace('-', "/"), "standard base64"),
        (TOKEN.replace('-', "%2B"), "standard base64"),
        (TOKEN.replace('-', "."), "outside URL-safe base64"),
        (TOKEN.replace('-', "+"), "outside URL-safe base64"), // `+` in a query is a space
        (TOKEN[..41].to_owned(), "not a possible base64 length"),
        (String::new(), "empty"),
    ];
    for (token, why) in cases {
        let link = reset_link(&token);
        let findings = Draft::with_links(&link, &link).check();
        assert_eq!(failing(&findings), [Check::TokenShape], "{token}: {findings:#?}");
        let f = finding(&findings, Check::TokenShape);
        assert!(f.actual.contains(why), "{token}: {f}");
    }
    let two = format!("{}&token={OTHER_TOKEN}", reset_link(TOKEN));
    let findings = Draft::with_links(&two, &two).check();
    assert!(finding(&findings, Check::TokenShape).actual.contains("2 tokens"));
    let none = format!("{TARGET}?lang=en");
    let findings = Draft::with_links(&none, &none).check();
    assert!(finding(&findings, Check::TokenShape).actual.contains("no token"));
}

#[test]
fn a_token_in_the_subject_or_another_header_is_caught() {
    let findings = Draft::good()
        .header("Subject", &format!("Your reset code: {TOKEN}"))
        .check();
    assert_eq!(failing(&findings), [Check::NoTokenInSubject], "{findings:#?}");
    // Encoded words are decoded before searching.
    let encoded = format!("=?utf-8?q?Code_{TOKEN}?=");
    let findings = Draft::good().header("Subject", &encoded).check();
    assert_eq!(failing(&findings), [Check::NoTokenInSubject], "{findings:#?}");

    let findings = Draft::good().add_header("X-Reset-Token", TOKEN).check();
    assert_eq!(failing(&findings), [Check::NoTokenInHeaders], "{findings:#?}");
    assert!(
        finding(&findings, Check::NoTokenInHeaders)
            .actual
            .contains("X-Reset-Token")
    );
}

#[test]
fn missing_or_malformed_auto_submitted_message_id_and_date_fail_their_checks() {
    let cases = [
        (Draft::good().without("Auto-Submitted"), Check::AutoSubmitted),
        (Draft::good().header("Auto-Submitted", "no"), Check::AutoSubmitted),
        (Draft::good().without("Message-ID"), Check::MessageId),
        (
            Draft::good().header("Message-ID", "5f1e.resetkit"),
            Check::MessageId,
        ),
        (
            Draft::good().header("Message-ID", "<no at sign>"),
            Check::MessageId,
        ),
        (
            Draft::good().add_header("Message-ID", "<2@example.test>"),
            Check::MessageId,
        ),
        (Draft::good().without("Date"), Check::Date),
        (Draft::good().header("Date", "yesterday afternoon"), Check::Date),
        (
            Draft::good().add_header("Date", "Tue, 02 Jan 2024 10:00:00 +0000"),
            Check::Date,
        ),
    ];
    for (draft, check) in cases {
        let findings = draft.check();
        assert_eq!(failing(&findings), [check], "{findings:#?}");
    }
    // Case and parameters of Auto-Submitted do not matter.
    let draft = Draft::good().header("auto-submitted", "Auto-Generated; reason=reset");
    assert!(failing(&draft.check()).is_empty());
}

#[test]
fn a_wrong_sender_or_recipient_fails_from_or_to() {
    let owner = Draft::good().header("From", "Alice Owner <owner@example.test>");
    let findings = owner.check();
    assert_eq!(failing(&findings), [Check::FromMatches], "{findings:#?}");
    let f = finding(&findings, Check::FromMatches);
    assert!(
        f.expected.contains("noreply@example.test") && f.actual.contains("owner@example.test"),
        "{f}"
    );

    let two = Draft::good().header("From", "noreply@example.test, owner@example.test");
    assert_eq!(failing(&two.check()), [Check::FromMatches]);
    let none = Draft::good().without("From");
    assert_eq!(failing(&none.check()), [Check::FromMatches]);

    let bob = Draft::good().header("To", "bob@example.com");
    assert_eq!(failing(&bob.check()), [Check::ToMatches]);
    let both = Draft::good().header("To", "alice@example.com, bob@example.com");
    assert_eq!(failing(&both.check()), [Check::ToMatches]);

    // The expectation may be written as a mailbox; case does not matter.
    let exp = expectation().from("Support <NoReply@Example.TEST>");
    assert!(failing(&inspect::check(&Draft::good().parse(), &exp)).is_empty());
    // Without an expected sender, one From address is still required.
    let loose = MailExpectation::new(LinkExpectation::parse(TARGET).unwrap());
    assert!(failing(&inspect::check(&owner.parse(), &loose)).is_empty());
    assert_eq!(
        failing(&inspect::check(&two.parse(), &loose)),
        [Check::FromMatches]
    );
}

#[test]
fn html_escaped_hrefs_are_unescaped_before_comparing() {
    let link = format!("{}&lang=en&x='y'", reset_link(TOKEN));
    let draft = Draft::with_links(&link, &link);
    assert!(draft.html.as_deref().unwrap().contains("&amp;lang=en"));
    let findings = draft.check();
    assert!(failing(&findings).is_empty(), "{findings:#?}");
    assert_eq!(
        inspect::reset_token(&draft.parse(), &expectation().link).unwrap(),
        TOKEN
    );
}

#[test]
fn html_links_decodes_references_and_reads_every_attribute_form() {
    let html = r#"<!-- <a href="https://commented.example/"> -->
        <A HREF="https://a.example/x?a=1&amp;b=2&quot;&#39;&#x2F;&#47;&lt;">one</A>
        <a class='c' href = 'https://b.example/'>two</a>
        <a href=https://c.example/?q=1&amp;r=2 target=_blank>three</a>
        <area shape="rect" href="  https://d.example/  ">
        <link href="https://style.example/">
        <script>var s = '<a href="https://script.example/">';</script>
        <a name="x">no href</a><a href="&unknown; &amp">odd</a>
        <a href="https:&#x2f;&#x2f;e.example&#x2F;reset"><img src="https://img.example/"></a>"#;
    assert_eq!(
        html_links(html),
        [
            "https://a.example/x?a=1&b=2\"'//<",
            "https://b.example/",
            "https://c.example/?q=1&r=2",
            "https://d.example/",
            "&unknown; &amp",
            "https://e.example/reset",
        ]
    );
    assert!(html_links("<a href=\"https://unterminated.example/").len() == 1);
    assert!(html_links("<<<>>> <a <a href= >").iter().all(|l| l.is_empty()));
}

#[test]
fn text_links_finds_urls_and_leaves_out_surrounding_punctuation() {
    let text = "See https://a.example/x?y=1. Or (https://b.example/p_(q)) and <https://c.example/>,\n\
                HTTPS://D.EXAMPLE/Up, xhttps://not.example/ \"http://e.example/\" https:// done\n\
                http://f.example/path?token=abc-_; 'https://g.example/q?x='y''";
    assert_eq!(
        text_links(text),
        [
            "https://a.example/x?y=1",
            "https://b.example/p_(q)",
            "https://c.example/",
            "HTTPS://D.EXAMPLE/Up",
            "http://e.example/",
            "http://f.example/path?token=abc-_",
            "https://g.example/q?x='y'",
        ]
    );
    assert!(text_links("no links at all, only http: and https:/").is_empty());
    assert_eq!(text_links("ünï https://ü.example/ö ü"), ["https://ü.example/ö"]);
}

#[test]
fn quoted_printable_and_base64_bodies_are_decoded() {
    for encoding in [
        ContentTransferEncoding::QuotedPrintable,
        ContentTransferEncoding::Base64,
    ] {
        let raw = lettre_draft(encoding);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains(&reset_link(TOKEN)),
            "{encoding:?} hides the link in transit:\n{text}"
        );
        let mail = ParsedMail::parse(&raw).unwrap();
        assert_eq!(mail.subject, "Réinitialiser votre mot de passe");
        let findings = inspect::check(&mail, &expectation());
        assert!(
            failing(&findings).is_empty(),
            "{encoding:?}: {findings:#?}\n{text}"
        );
        assert_eq!(inspect::reset_token(&mail, &expectation().link).unwrap(), TOKEN);
    }
    // Quoted-printable written by hand: `=3D` and a soft break inside the link.
    let link = reset_link(TOKEN).replace('=', "=3D");
    let (head, tail) = link.split_at(40);
    let raw = String::from_utf8(Draft::good().text(None).render())
        .unwrap()
        .replace(
            "Content-Transfer-Encoding: 7bit",
            "Content-Transfer-Encoding: quoted-printable",
        )
        .replace(
            &html_body(&reset_link(TOKEN), &format!("{DENY}?token={TOKEN}")),
            &format!("<a href=3D\"{head}=\r\n{tail}\">reset</a>\r\n"),
        );
    let mail = ParsedMail::parse(raw.as_bytes()).unwrap();
    assert_eq!(html_links(mail.html.as_deref().unwrap()), [reset_link(TOKEN)]);
}

#[test]
fn a_missing_part_fails_both_parts() {
    let findings = Draft::good().html(None).check();
    assert_eq!(
        failing(&findings),
        [Check::BothParts, Check::SameLinkBothParts],
        "{findings:#?}"
    );
    assert!(
        finding(&findings, Check::BothParts)
            .actual
            .contains("text/html missing")
    );
    let findings = Draft::good().text(None).check();
    assert_eq!(
        failing(&findings),
        [Check::BothParts, Check::SameLinkBothParts, Check::LinkOnOwnLine],
        "{findings:#?}"
    );
    let mail = Draft::good().text(None).parse();
    assert!(mail.text.is_none(), "no text made up from the HTML");
}

#[test]
fn no_reset_link_fails_one_reset_link_and_lists_what_was_there() {
    let moved = format!("https://app.example.test/password/reset?token={TOKEN}");
    let findings = Draft::with_links(&moved, &moved).check();
    assert_eq!(failing(&findings), [Check::OneResetLink], "{findings:#?}");
    let f = finding(&findings, Check::OneResetLink);
    assert!(
        f.actual.starts_with("0 reset link(s)") && f.actual.contains("/password/reset"),
        "{f}"
    );
    // Per-link checks are left out when there is no link to check.
    assert!(findings.iter().all(|f| f.check != Check::TokenShape));
    assert!(inspect::reset_token(&Draft::with_links(&moved, &moved).parse(), &expectation().link).is_err());
}

#[test]
fn a_relative_href_is_found_but_fails_link_matches_base() {
    let draft = Draft::good().html(Some(format!("<a href=\"/reset?token={TOKEN}\">reset</a>")));
    let findings = draft.check();
    let failed = failing(&findings);
    assert!(failed.contains(&Check::LinkMatchesBase), "{findings:#?}");
    assert!(
        finding(&findings, Check::LinkMatchesBase)
            .actual
            .contains("written relative")
    );
    let links = inspect::find_reset_links(&draft.parse(), &expectation().link);
    assert!(links.iter().any(|l| l.relative && l.in_html && !l.in_text));
}

#[test]
fn a_link_elsewhere_that_carries_the_token_fails_token_stays_on_site() {
    let tracker = format!(
        "<a href=\"https://tracker.example/c?u=https%3A%2F%2Fapp.example.test%2Freset%3Ftoken%3D{TOKEN}\">x</a>"
    );
    let html = format!("{}{tracker}", Draft::good().html.unwrap());
    let findings = Draft::good().html(Some(html)).check();
    assert_eq!(failing(&findings), [Check::TokenStaysOnSite], "{findings:#?}");
    assert!(
        finding(&findings, Check::TokenStaysOnSite)
            .actual
            .contains("tracker.example")
    );
}

#[test]
fn a_token_in_the_last_path_segment_is_checked_when_expected_there() {
    let link = format!("{TARGET}/{TOKEN}");
    // Every link under the reset path counts, so this site's deny link lives elsewhere.
    let deny = format!("https://app.example.test/deny?token={TOKEN}");
    let draft = Draft::good()
        .text(Some(text_body(&link, &deny)))
        .html(Some(html_body(&link, &deny)));
    let exp = LinkExpectation::parse(TARGET)
        .unwrap()
        .placement(TokenLocation::PathSegment);
    let findings = inspect::check_links(&draft.parse(), &exp);
    assert!(failing(&findings).is_empty(), "{findings:#?}");
    assert_eq!(inspect::reset_token(&draft.parse(), &exp).unwrap(), TOKEN);
    let short = format!("{TARGET}/abc");
    let draft = Draft::good()
        .text(Some(text_body(&short, &deny)))
        .html(Some(html_body(&short, &deny)));
    let findings = inspect::check_links(&draft.parse(), &exp);
    assert_eq!(failing(&findings), [Check::TokenShape]);
}

#[test]
fn findings_serialise_with_stable_ids() {
    let findings = Draft::good().without("Date").check();
    let json = serde_json::to_value(finding(&findings, Check::Date)).unwrap();
    assert_eq!(json["check"], "date");
    assert_eq!(json["ok"], false);
    let mut ids: Vec<&str> = findings.iter().map(|f| f.check.id()).collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "ids are unique");
    assert!(findings.iter().filter(|f| f.check.is_link_check()).count() == 7);
}

// ---------------------------------------------------------------------------
// Unreadable input

#[test]
fn input_that_is_not_an_email_is_an_error_not_a_panic() {
    assert_eq!(ParsedMail::parse(b""), Err(InspectError::Empty));
    assert_eq!(ParsedMail::parse(b" \r\n\t"), Err(InspectError::Empty));
    for garbage in [
        &b"\x00\x01\xff\xfe"[..],
        b"hello world",
        b"\r\n\r\nonly a body",
        b"\x89PNG\r\n\x1a\n",
    ] {
        let err = ParsedMail::parse(garbage).unwrap_err();
        assert!(
            matches!(
                err,
                InspectError::NoHeaders { .. } | InspectError::Unparseable { .. }
            ),
            "{garbage:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("cannot inspect the mail"), "{err}");
    }
}

/// xorshift64*: a fixed-seed generator, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn inspect_everything(raw: &[u8]) {
    let exp = expectation();
    if let Ok(mail) = ParsedMail::parse(raw) {
        let _ = inspect::check(&mail, &exp);
        let _ = inspect::reset_token(&mail, &exp.link);
        let path = exp.link.clone().placement(TokenLocation::PathSegment);
        let _ = inspect::check_links(&mail, &path);
    }
    let text = String::from_utf8_lossy(raw);
    let _ = text_links(&text);
    let _ = html_links(&text);
}

#[test]
fn random_and_mangled_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Bytes from a small alphabet heavy in MIME and HTML syntax.
    let pieces: [&[u8]; 16] = [
        b"From: ",
        b"\r\n",
        b"<a href=\"",
        b"https://",
        b"&amp;",
        b"&#x",
        b"=\r\n",
        b"--B",
        b"Content-Type: multipart/alternative; boundary=B\r\n",
        b"?token=",
        b"\"",
        b"<",
        b">",
        b":",
        b"\xff\xfe",
        b"=?utf-8?b?",
    ];
    for _ in 0..400 {
        let mut input = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.below(3) == 0 {
                input.extend_from_slice(pieces[rng.below(pieces.len())]);
            } else {
                input.push(rng.next() as u8);
            }
        }
        inspect_everything(&input);
    }
    // Mangled real messages: bytes replaced, cut short, lines inserted.
    let samples = [
        Draft::good().render(),
        lettre_draft(ContentTransferEncoding::QuotedPrintable),
        lettre_draft(ContentTransferEncoding::Base64),
    ];
    for round in 0..300 {
        let mut input = samples[round % samples.len()].clone();
        for _ in 0..1 + rng.below(8) {
            if input.is_empty() {
                break;
            }
            let at = rng.below(input.len());
            match rng.below(3) {
                0 => input[at] = rng.next() as u8,
                1 => input.truncate(at),
                _ => input.splice(at..at, *b"\r\n=").for_each(drop),
            }
        }
        inspect_everything(&input);
    }
}
