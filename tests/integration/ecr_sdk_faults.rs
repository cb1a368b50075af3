//! What the emulator cannot produce, at the SDK level (aws-smithy-mocks), with
//! the production retry settings: ECR's immutable-tag error, throttling, 5xx,
//! and BatchGetImage failures.

use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::put_image::{PutImageError, PutImageOutput};
use aws_sdk_ecr::types::error::ImageTagAlreadyExistsException;
use aws_sdk_ecr::types::{Image, ImageFailure, ImageFailureCode, ImageIdentifier};
use aws_sdk_ecr::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use ecr_retag::apply::Settings;
use ecr_retag::registry::ecr::{retry_config, Ecr};
use ecr_retag::report::Outcome;
use ecr_retag::error::RetagError;
use ecr_retag::apply::retag;
use ecr_retag::domain::rules::RuleSet;

const MINE: &str = "sha256:c1c735361890448e6985e2338a833ffda0c768242425d348604a4430517a3445";
const OTHER: &str = "sha256:47dc8b00b01a9c21a1ca5ae22f7f972b802ee83769bad4c5bfabf43ab6efb341";
const MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_ecr, RuleMode::MatchAny, rules, |c| c.retry_config(retry_config()))
}

fn push() -> ecr_retag::domain::request::Push {
    ecr_retag::domain::request::Push {
        repository: ecr_retag::domain::names::Repository::own(ecr_retag::domain::names::RepositoryName::parse("app").unwrap()),
        tag: ecr_retag::domain::names::Tag::parse("v1.4.2").unwrap(),
        digest: Some(ecr_retag::domain::names::Digest::parse(MINE).unwrap()),
        pushed_at: "2026-11-24T10:15:02Z".parse().unwrap(),
        media_type: None,
        artifact_media_type: None,
        dry_run: false,
    }
}

fn config() -> Settings {
    Settings::new(RuleSet::from_json(r#"{"rules":[{"name":"r","semver":true,"tags":["stable"]}]}"#).unwrap())
}

fn image(digest: &str, tag: Option<&str>) -> Image {
    Image::builder()
        .image_id(ImageIdentifier::builder().image_digest(digest).set_image_tag(tag.map(Into::into)).build())
        .image_manifest("{}")
        .image_manifest_media_type(MEDIA)
        .build()
}

fn not_found(tag: &str) -> ImageFailure {
    ImageFailure::builder()
        .image_id(ImageIdentifier::builder().image_tag(tag).build())
        .failure_code(ImageFailureCode::ImageNotFound)
        .failure_reason("Requested image not found")
        .build()
}

/// BatchGetImage: the image, and `stable` absent.
fn read_stable_absent() -> Rule {
    mock!(Client::batch_get_image)
        .then_output(|| BatchGetImageOutput::builder().images(image(MINE, None)).failures(not_found("stable")).build())
}

fn json_error(status: u16, code: &str) -> aws_smithy_runtime_api::http::Response<aws_smithy_types::body::SdkBody> {
    let body = format!(r#"{{"__type":"{code}","message":"injected {code}"}}"#);
    let mut response = aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
        aws_smithy_types::body::SdkBody::from(body),
    );
    response.headers_mut().insert("x-amzn-errortype", code.to_owned());
    response.headers_mut().insert("content-type", "application/x-amz-json-1.1");
    response
}

async fn run(rules: &[&Rule]) -> Result<ecr_retag::report::Report, RetagError> {
    retag(&Ecr::new(client(rules)), &config(), &push()).await
}

#[tokio::test]
async fn image_tag_already_exists_on_this_digest_is_unchanged() {
    // The first read says absent (a concurrent delivery is about to write it); the re-read finds it ours.
    let (reads, put) = immutable_then_on(MINE);
    let report = run(&[&reads, &put]).await.unwrap();
    assert_eq!(report.tags[0].outcome, Outcome::Unchanged);
    assert_eq!(reads.num_calls(), 2);
    assert_eq!(put.num_calls(), 1, "ECR's refusal is final; no retry");
}

/// `stable` read as absent, then refused as immutable, then found on `holder`.
fn immutable_then_on(holder: &'static str) -> (Rule, Rule) {
    let reads = mock!(Client::batch_get_image)
        .sequence()
        .output(|| BatchGetImageOutput::builder().images(image(MINE, None)).failures(not_found("stable")).build())
        .output(move || BatchGetImageOutput::builder().images(image(MINE, None)).images(image(holder, Some("stable"))).build())
        .build();
    let put = mock!(Client::put_image)
        .then_error(|| PutImageError::ImageTagAlreadyExistsException(ImageTagAlreadyExistsException::builder().build()));
    (reads, put)
}

#[tokio::test]
async fn image_tag_already_exists_on_another_digest_is_a_permanent_conflict() {
    let (reads, put) = immutable_then_on(OTHER);
    let filter = aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
        .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
        .filter("edge")
        .build()
        .unwrap();
    let described = mock!(Client::describe_repositories).then_output(move || {
        let repository = aws_sdk_ecr::types::Repository::builder()
            .repository_name("app")
            .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
            .image_tag_mutability_exclusion_filters(filter.clone())
            .build();
        aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput::builder().repositories(repository).build()
    });
    let err = run(&[&reads, &put, &described]).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.TagsNotApplied");
    assert_eq!(err.report().unwrap().tags[0].outcome, Outcome::Conflict);
    assert!(err.to_string().contains(OTHER), "{err}");
    let detail = err.report().unwrap().tags[0].detail.clone().unwrap();
    assert!(
        detail.contains("; the repository is IMMUTABLE_WITH_EXCLUSION with exclusion filters `edge`, none covering `stable`; to let it move: "),
        "the adapter reads the mode and the filters: {detail}"
    );
    assert_eq!(described.num_calls(), 1);
}

#[tokio::test]
async fn a_conflict_whose_repository_cannot_be_described_keeps_its_plain_detail() {
    let (reads, put) = immutable_then_on(OTHER);
    let denied = mock!(Client::describe_repositories).then_http_response(|| json_error(400, "AccessDeniedException"));
    let err = run(&[&reads, &put, &denied]).await.unwrap_err();
    assert_eq!(err.report().unwrap().tags[0].detail.as_deref(), Some(format!("the tag is immutable and points at {OTHER}").as_str()));
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_then_succeeds() {
    let read = read_stable_absent();
    let put = mock!(Client::put_image)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException"))
        .times(2)
        .output(|| PutImageOutput::builder().build())
        .build();
    let report = run(&[&read, &put]).await.unwrap();
    assert_eq!(report.tags[0].outcome, Outcome::Created);
    assert_eq!(put.num_calls(), 3);
}

#[tokio::test]
async fn a_5xx_that_outlasts_the_retries_fails_the_tag_as_retryable() {
    let read = read_stable_absent();
    let put = mock!(Client::put_image).sequence().http_response(|| json_error(503, "ServiceUnavailable")).repeatedly().build();
    let err = run(&[&read, &put]).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.TagsNotApplied");
    assert_eq!(put.num_calls(), 3, "the configured attempts, then stop");
    let tag = &err.report().unwrap().tags[0];
    assert_eq!(tag.outcome, Outcome::Failed);
    assert_eq!(tag.detail.as_deref(), Some("ServiceUnavailable: injected ServiceUnavailable"));
}

#[tokio::test]
async fn a_5xx_without_an_ecr_error_is_reported_by_its_http_status() {
    // A load balancer's HTML page, as a 503 from in front of ECR can be.
    let html = || {
        let mut response = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
            aws_smithy_types::body::SdkBody::from("<html><body>503 Service Temporarily Unavailable</body></html>"),
        );
        response.headers_mut().insert("content-type", "text/html");
        response
    };
    let read = read_stable_absent();
    let put = mock!(Client::put_image).sequence().http_response(html).repeatedly().build();
    let err = run(&[&read, &put]).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.TagsNotApplied");
    let tag = &err.report().unwrap().tags[0];
    assert_eq!(tag.detail.as_deref(), Some("HTTP 503: an answer with status 503 and no ECR error"));
}

#[tokio::test]
async fn a_server_exception_on_the_read_is_retryable_and_writes_nothing() {
    let read = mock!(Client::batch_get_image).sequence().http_response(|| json_error(500, "ServerException")).repeatedly().build();
    let put = mock!(Client::put_image).then_output(|| PutImageOutput::builder().build());
    let err = run(&[&read, &put]).await.unwrap_err();
    assert_eq!(err.error_type(), "Retryable.ReadFailed");
    assert_eq!(read.num_calls(), 3);
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn an_image_failure_other_than_not_found_is_a_read_error() {
    let read = mock!(Client::batch_get_image).then_output(|| {
        BatchGetImageOutput::builder()
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_digest(MINE).build())
                    .failure_code(ImageFailureCode::KmsError)
                    .failure_reason("KMS key disabled")
                    .build(),
            )
            .build()
    });
    let err = run(&[&read]).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ReadFailed");
    assert!(err.to_string().contains("KmsError: KMS key disabled"), "{err}");
}

#[tokio::test]
async fn a_digest_ecr_does_not_know_is_image_not_found() {
    let read = mock!(Client::batch_get_image).then_output(|| {
        BatchGetImageOutput::builder()
            .failures(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_digest(MINE).build())
                    .failure_code(ImageFailureCode::ImageNotFound)
                    .build(),
            )
            .build()
    });
    let err = run(&[&read]).await.unwrap_err();
    assert_eq!(err.error_type(), "Permanent.ImageNotFound");
}

#[tokio::test]
async fn a_tag_the_answer_does_not_mention_is_written_and_put_image_arbitrates() {
    // Only the image, no word on `stable`: PutImage answers ImageAlreadyExists, so it was ours.
    let read = mock!(Client::batch_get_image).then_output(|| BatchGetImageOutput::builder().images(image(MINE, None)).build());
    let put = mock!(Client::put_image).then_error(|| {
        PutImageError::ImageAlreadyExistsException(aws_sdk_ecr::types::error::ImageAlreadyExistsException::builder().build())
    });
    let report = run(&[&read, &put]).await.unwrap();
    assert_eq!(report.tags[0].outcome, Outcome::Unchanged);
    assert_eq!(put.num_calls(), 1);
}

mod paginated_sweep {
    //! The emulator does not paginate; ECR answers DescribeRepositories and
    //! DescribeImages 1,000 items a page. A sweep must follow every page.
    use super::*;
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
    use aws_sdk_ecr::primitives::DateTime;
    use aws_sdk_ecr::types::{ImageDetail, Repository as EcrRepository};
    use ecr_retag::input::{parse, Invocation};
    use ecr_retag::apply::sweep::reconcile;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn repos(names: &[&str], next: Option<&str>) -> DescribeRepositoriesOutput {
        let list = names.iter().map(|n| EcrRepository::builder().repository_name(*n).build()).collect();
        DescribeRepositoriesOutput::builder().set_repositories(Some(list)).set_next_token(next.map(Into::into)).build()
    }

    fn images(list: &[(&str, &str, i64)], next: Option<&str>) -> DescribeImagesOutput {
        let details = list
            .iter()
            .map(|(digest, tag, day)| {
                ImageDetail::builder()
                    .image_digest(*digest)
                    .image_tags(*tag)
                    .image_pushed_at(DateTime::from_secs(1_793_000_000 + day * 86_400))
                    .image_manifest_media_type(MEDIA)
                    .build()
            })
            .collect();
        DescribeImagesOutput::builder().set_image_details(Some(details)).set_next_token(next.map(Into::into)).build()
    }

    #[tokio::test]
    async fn a_sweep_follows_every_page_of_repositories_and_images() {
        let repos_1 = mock!(Client::describe_repositories)
            .match_requests(|r| r.next_token().is_none() && r.max_results() == Some(1000))
            .then_output(|| repos(&["team/a", "other"], Some("r2")));
        let repos_2 = mock!(Client::describe_repositories)
            .match_requests(|r| r.next_token() == Some("r2"))
            .then_output(|| repos(&["team/b"], None));
        // team/a: v1.0.0 on page one, v1.1.0 (pushed a day later) on page two.
        let a_1 = mock!(Client::describe_images)
            .match_requests(|r| r.repository_name() == Some("team/a") && r.next_token().is_none())
            .then_output(|| images(&[(A, "v1.0.0", 0)], Some("i2")));
        let a_2 = mock!(Client::describe_images)
            .match_requests(|r| r.repository_name() == Some("team/a") && r.next_token() == Some("i2"))
            .then_output(|| images(&[(B, "v1.1.0", 1)], None));
        let b = mock!(Client::describe_images)
            .match_requests(|r| r.repository_name() == Some("team/b"))
            .then_output(|| images(&[(C, "v2.0.0", 0)], None));
        let read_b = mock!(Client::batch_get_image)
            .match_requests(|r| r.image_ids()[0].image_digest() == Some(B))
            .then_output(|| BatchGetImageOutput::builder().images(image(B, None)).failures(not_found("stable")).build());
        let read_c = mock!(Client::batch_get_image)
            .match_requests(|r| r.image_ids()[0].image_digest() == Some(C))
            .then_output(|| BatchGetImageOutput::builder().images(image(C, None)).failures(not_found("stable")).build());
        let put_b = mock!(Client::put_image)
            .match_requests(|r| r.repository_name() == Some("team/a") && r.image_digest() == Some(B) && r.image_tag() == Some("stable"))
            .then_output(|| PutImageOutput::builder().build());
        let put_c = mock!(Client::put_image)
            .match_requests(|r| r.repository_name() == Some("team/b") && r.image_digest() == Some(C) && r.image_tag() == Some("stable"))
            .then_output(|| PutImageOutput::builder().build());
        let ecr = Ecr::new(client(&[&repos_1, &repos_2, &a_1, &a_2, &b, &read_b, &read_c, &put_b, &put_c]));

        let Ok(Invocation::Reconcile(request)) = parse(&json!({"reconcile": {"repositories": ["team/*"]}}).to_string(), chrono::DateTime::UNIX_EPOCH) else {
            panic!("a reconcile request")
        };
        let report = reconcile(&ecr, &config(), &request, None, None).await.unwrap();

        let swept: Vec<(&str, usize, usize)> =
            report.repositories.iter().map(|r| (r.repository.as_str(), r.images_seen, r.tags_written)).collect();
        assert_eq!(swept, [("team/a", 2, 1), ("team/b", 1, 1)], "`other` is not under team/; both pages of each listing read");
        assert_eq!((put_b.num_calls(), put_c.num_calls()), (1, 1), "stable on team/a's newest push (page two) and on team/b");
        assert_eq!((repos_2.num_calls(), a_2.num_calls()), (1, 1));
    }
}
