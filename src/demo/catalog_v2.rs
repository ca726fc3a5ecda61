//! catalog.v2.Catalog over the same books as catalog.v1: each v2 call is translated into the v1
//! call the catalog answers and the answer translated back, as a service that keeps one store
//! behind two API versions would. Authors are joined with " & " in v1's one string; ratings
//! are tenths in v1 and out of 5 in v2.

use prost_reflect::{DynamicMessage, Value};
use tonic::Status;

use super::catalog::Catalog;
use super::fields::{int, message, set, string, strings};

const AUTHOR_SEPARATOR: &str = " & ";

/// Answers the unary v2 method `method` (its short name).
pub(super) fn answer(catalog: &Catalog, method: &str, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
    match method {
        "GetBook" => {
            let v1 = copy_fields(catalog, request, "catalog.v1.GetBookRequest", &["name"]);
            Ok(book_to_v2(catalog, &catalog.get_book(&v1)?))
        }
        "ListBooks" => {
            let fields = ["parent", "page_size", "page_token"];
            let v1 = copy_fields(catalog, request, "catalog.v1.ListBooksRequest", &fields);
            let page = catalog.list_books(&v1)?;
            let mut response = DynamicMessage::new(catalog.descriptor("catalog.v2.ListBooksResponse"));
            let books = match page.get_field_by_name("books").as_deref() {
                Some(Value::List(books)) => books
                    .iter()
                    .filter_map(Value::as_message)
                    .map(|book| Value::Message(book_to_v2(catalog, book)))
                    .collect(),
                _ => Vec::new(),
            };
            set(&mut response, "books", Value::List(books));
            set(&mut response, "next_page_token", Value::String(string(&page, "next_page_token")));
            Ok(response)
        }
        "CreateBook" => {
            let mut v1 = copy_fields(catalog, request, "catalog.v1.CreateBookRequest", &["parent", "book_id"]);
            if let Some(book) = message(request, "book") {
                set(&mut v1, "book", Value::Message(book_to_v1(catalog, &book)?));
            }
            Ok(book_to_v2(catalog, &catalog.create_book(&v1)?))
        }
        other => Err(Status::unimplemented(format!("catalog.v2.Catalog/{other} is not implemented by the demo"))),
    }
}

/// A message of type `to` with `fields` copied from `from` (same names, same kinds).
fn copy_fields(catalog: &Catalog, from: &DynamicMessage, to: &str, fields: &[&str]) -> DynamicMessage {
    let mut target = DynamicMessage::new(catalog.descriptor(to));
    for field in fields {
        if let Some(value) = from.get_field_by_name(field) {
            set(&mut target, field, value.into_owned());
        }
    }
    target
}

/// A catalog.v1.Book as catalog.v2 shows it.
fn book_to_v2(catalog: &Catalog, v1: &DynamicMessage) -> DynamicMessage {
    let mut book = DynamicMessage::new(catalog.descriptor("catalog.v2.Book"));
    set(&mut book, "name", Value::String(string(v1, "name")));
    set(&mut book, "title", Value::String(string(v1, "title")));
    let author = string(v1, "author");
    let authors: Vec<Value> = author
        .split(AUTHOR_SEPARATOR)
        .filter(|a| !a.trim().is_empty())
        .map(|a| Value::String(a.trim().to_owned()))
        .collect();
    set(&mut book, "authors", Value::List(authors));
    let isbn = int(v1, "isbn");
    if isbn != 0 {
        set(&mut book, "isbn", Value::String(isbn.to_string()));
    }
    if let Some(published) = message(v1, "publish_time") {
        set(&mut book, "publish_time", Value::Message(published));
    }
    if let Some(rating) = message(v1, "rating") {
        // Tenths to a score out of 5 (46 → 4.6).
        let tenths = int(&rating, "value");
        set(&mut book, "rating", Value::F32(tenths as f32 / 10.0));
    }
    set(&mut book, "genre", Value::EnumNumber(i32::try_from(int(v1, "genre")).unwrap_or(0)));
    set(&mut book, "tags", Value::List(strings(v1, "tags").into_iter().map(Value::String).collect()));
    book
}

/// A catalog.v2.Book (a create request's) as the v1 catalog stores it; bad values are refused
/// with the v2 field they came from.
fn book_to_v1(catalog: &Catalog, v2: &DynamicMessage) -> Result<DynamicMessage, Status> {
    let mut book = DynamicMessage::new(catalog.descriptor("catalog.v1.Book"));
    set(&mut book, "title", Value::String(string(v2, "title")));
    let authors = strings(v2, "authors");
    if let Some(bad) = authors.iter().find(|a| a.contains(AUTHOR_SEPARATOR) || a.trim().is_empty()) {
        return Err(catalog.bad_request(
            format!("book.authors: `{bad}` is not one author's name"),
            "book.authors",
            "list each author on their own, without \" & \"",
        ));
    }
    set(&mut book, "author", Value::String(authors.join(AUTHOR_SEPARATOR)));
    let isbn = string(v2, "isbn");
    if !isbn.is_empty() {
        let digits = isbn.len() == 13 && isbn.bytes().all(|b| b.is_ascii_digit());
        let number = isbn.parse::<i64>().ok().filter(|_| digits).ok_or_else(|| {
            catalog.bad_request(format!("book.isbn: `{isbn}` is not an ISBN-13"), "book.isbn", "write the 13 digits")
        })?;
        set(&mut book, "isbn", Value::I64(number));
    }
    if let Some(published) = message(v2, "publish_time") {
        set(&mut book, "publish_time", Value::Message(published));
    }
    if v2.has_field_by_name("rating") {
        let rating = match v2.get_field_by_name("rating").as_deref() {
            Some(Value::F32(r)) => *r,
            _ => 0.0,
        };
        if !(0.0..=5.0).contains(&rating) {
            return Err(catalog.bad_request(
                format!("book.rating: {rating} is not between 0 and 5"),
                "book.rating",
                "rate out of 5",
            ));
        }
        let mut tenths = DynamicMessage::new(catalog.descriptor("google.protobuf.Int32Value"));
        set(&mut tenths, "value", Value::I32((rating * 10.0).round() as i32));
        set(&mut book, "rating", Value::Message(tenths));
    }
    set(&mut book, "genre", Value::EnumNumber(i32::try_from(int(v2, "genre")).unwrap_or(0)));
    set(&mut book, "tags", Value::List(strings(v2, "tags").into_iter().map(Value::String).collect()));
    Ok(book)
}
