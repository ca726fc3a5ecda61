//! `switchyard routes`: print the REST route table that `serve` would serve.

use super::{CommandResult, SourceArgs, snapshot_or_problems};
use crate::transcode::routes::{BodyRule, RouteOrigin};

pub(crate) async fn run(args: SourceArgs) -> CommandResult {
    let snapshot = snapshot_or_problems(args.sources(None, None)).await?;
    let rows: Vec<[String; 4]> = snapshot
        .routes
        .routes()
        .iter()
        .map(|entry| {
            let route = &entry.value;
            let mut notes = vec![route.call_kind().as_str().to_owned()];
            match &route.body {
                BodyRule::None => {}
                BodyRule::Whole => notes.push("body=*".into()),
                BodyRule::Field(field) => notes.push(format!("body={}", field.name())),
            }
            if let Some(field) = &route.response_body {
                notes.push(format!("response_body={}", field.name()));
            }
            if route.origin == RouteOrigin::Default {
                notes.push("default".into());
            }
            [entry.method.to_string(), entry.template.to_string(), route.method.full_name().to_owned(), notes.join(" ")]
        })
        .collect();
    if rows.is_empty() {
        println!("no routes: no services are registered");
        return Ok(());
    }
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for [method, path, grpc, notes] in &rows {
        println!("{method:<w0$}  {path:<w1$}  {grpc:<w2$}  {notes}");
    }
    Ok(())
}
