//! The demo bookshop's behaviour, on dynamic messages: an in-memory shelf of books, change
//! events for WatchBooks, and a chat echo for DiscussBook. It validates its inputs the way a
//! careful real service would, so gateway error paths can be shown against it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tokio::sync::broadcast;
use tonic::Status;

use super::fields::{int, message, set, string, strings, timestamp, timestamp_at};

const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 100;

/// The bookshop's state.
pub(super) struct Catalog {
    pool: DescriptorPool,
    books: Mutex<BTreeMap<String, DynamicMessage>>,
    events: broadcast::Sender<DynamicMessage>,
    next_id: Mutex<u64>,
}

impl Catalog {
    pub(super) fn new(pool: DescriptorPool) -> Self {
        let (events, _) = broadcast::channel(256);
        let catalog = Catalog { pool, books: Mutex::new(BTreeMap::new()), events, next_id: Mutex::new(1) };
        catalog.seed();
        catalog
    }

    pub(super) fn descriptor(&self, name: &str) -> MessageDescriptor {
        self.pool.get_message_by_name(name).expect("demo descriptors define every message the demo uses")
    }

    fn seed(&self) {
        let seeds = [
            ("shelves/1/books/1", "The Left Hand of Darkness", "Ursula K. Le Guin", 9780441478125_i64, 1969_i64, 1, 46),
            ("shelves/1/books/2", "A Wizard of Earthsea", "Ursula K. Le Guin", 9780547773742, 1968, 1, 47),
            ("shelves/2/books/1", "The Selfish Gene", "Richard Dawkins", 9780198788607, 1976, 4, 44),
        ];
        let mut books = self.books.lock().expect("demo lock is never poisoned");
        for (name, title, author, isbn, year, genre, rating) in seeds {
            let mut book = DynamicMessage::new(self.descriptor("catalog.v1.Book"));
            set(&mut book, "name", Value::String(name.into()));
            set(&mut book, "title", Value::String(title.into()));
            set(&mut book, "author", Value::String(author.into()));
            set(&mut book, "isbn", Value::I64(isbn));
            let ts_desc = self.descriptor("google.protobuf.Timestamp");
            let published = timestamp_at(&ts_desc, (year - 1970) * 31_557_600, 0);
            set(&mut book, "publish_time", Value::Message(published));
            let mut rating_msg = DynamicMessage::new(self.descriptor("google.protobuf.Int32Value"));
            set(&mut rating_msg, "value", Value::I32(rating));
            set(&mut book, "rating", Value::Message(rating_msg));
            set(&mut book, "genre", Value::EnumNumber(genre));
            set(&mut book, "in_stock", Value::Bool(true));
            set(&mut book, "tags", Value::List(vec![Value::String("classic".into())]));
            books.insert(name.to_owned(), book);
        }
    }

    pub(super) fn get_book(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let name = string(request, "name");
        check_book_name(&name)?;
        let books = self.books.lock().expect("demo lock is never poisoned");
        books.get(&name).cloned().ok_or_else(|| Status::not_found(format!("book `{name}` does not exist")))
    }

    pub(super) fn list_books(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let parent = string(request, "parent");
        check_shelf_name(&parent)?;
        let page_size = match int(request, "page_size") {
            n if n < 0 => return Err(Status::invalid_argument("page_size must not be negative")),
            0 => DEFAULT_PAGE,
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let token = string(request, "page_token");
        let offset: usize = if token.is_empty() {
            0
        } else {
            token.parse().map_err(|_| {
                self.bad_request(
                    format!("page_token `{token}` is not valid"),
                    "page_token",
                    "use the next_page_token of a previous page",
                )
            })?
        };
        let genre = int(request, "genre");
        let author = string(request, "author");
        // AIP-159: `shelves/-` lists the books of every shelf.
        let prefix = if parent == "shelves/-" { "shelves/".to_owned() } else { format!("{parent}/books/") };
        let books = self.books.lock().expect("demo lock is never poisoned");
        let matching: Vec<&DynamicMessage> = books
            .iter()
            .filter(|(name, book)| {
                name.starts_with(&prefix)
                    && (genre == 0 || int(book, "genre") == genre)
                    && (author.is_empty() || string(book, "author") == author)
            })
            .map(|(_, book)| book)
            .collect();
        let page: Vec<Value> =
            matching.iter().skip(offset).take(page_size).map(|b| Value::Message((*b).clone())).collect();
        let mut response = DynamicMessage::new(self.descriptor("catalog.v1.ListBooksResponse"));
        if offset + page.len() < matching.len() {
            set(&mut response, "next_page_token", Value::String((offset + page.len()).to_string()));
        }
        set(&mut response, "books", Value::List(page));
        set(&mut response, "total_size", Value::I64(i64::try_from(matching.len()).unwrap_or(i64::MAX)));
        Ok(response)
    }

    pub(super) fn create_book(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let parent = string(request, "parent");
        check_shelf_name(&parent)?;
        let mut book = message(request, "book").ok_or_else(|| Status::invalid_argument("book is required"))?;
        if string(&book, "title").trim().is_empty() {
            return Err(Status::invalid_argument("book.title is required"));
        }
        let mut id = string(request, "book_id");
        if id.is_empty() {
            let mut next = self.next_id.lock().expect("demo lock is never poisoned");
            id = format!("n{next}");
            *next += 1;
        } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Status::invalid_argument(format!("book_id `{id}` may hold only letters, digits and -")));
        }
        let name = format!("{parent}/books/{id}");
        set(&mut book, "name", Value::String(name.clone()));
        let mut books = self.books.lock().expect("demo lock is never poisoned");
        if books.contains_key(&name) {
            return Err(Status::already_exists(format!("book `{name}` already exists")));
        }
        books.insert(name, book.clone());
        drop(books);
        self.publish(1, &book);
        Ok(book)
    }

    pub(super) fn update_book(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let patch = message(request, "book").ok_or_else(|| Status::invalid_argument("book is required"))?;
        let name = string(&patch, "name");
        check_book_name(&name)?;
        let paths = message(request, "update_mask").map(|m| strings(&m, "paths")).unwrap_or_default();
        let mut books = self.books.lock().expect("demo lock is never poisoned");
        let current = books.get_mut(&name).ok_or_else(|| Status::not_found(format!("book `{name}` does not exist")))?;
        let descriptor = current.descriptor();
        let fields: Vec<String> = if paths.is_empty() {
            descriptor.fields().map(|f| f.name().to_owned()).filter(|n| n != "name").collect()
        } else {
            paths
        };
        // The name identifies the book; a mask naming it (as masks built from every input key
        // do) leaves it as it is.
        for path in fields.iter().filter(|p| p.as_str() != "name") {
            let field = descriptor.get_field_by_name(path).ok_or_else(|| {
                Status::invalid_argument(format!("update_mask: `{path}` is not an updatable field of Book"))
            })?;
            if patch.has_field(&field) {
                current.set_field(&field, patch.get_field(&field).into_owned());
            } else {
                current.clear_field(&field);
            }
        }
        let updated = current.clone();
        drop(books);
        self.publish(2, &updated);
        Ok(updated)
    }

    pub(super) fn delete_book(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let name = string(request, "name");
        check_book_name(&name)?;
        let removed = self.books.lock().expect("demo lock is never poisoned").remove(&name);
        let book = removed.ok_or_else(|| Status::not_found(format!("book `{name}` does not exist")))?;
        self.publish(3, &book);
        Ok(DynamicMessage::new(self.descriptor("google.protobuf.Empty")))
    }

    pub(super) fn upload_cover(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let name = string(request, "name");
        check_book_name(&name)?;
        let cover = message(request, "cover").ok_or_else(|| Status::invalid_argument("cover is required"))?;
        let data = match cover.get_field_by_name("data").as_deref() {
            Some(Value::Bytes(bytes)) => bytes.clone(),
            _ => Default::default(),
        };
        if data.len() > 64 * 1024 {
            return Err(Status::invalid_argument("a cover thumbnail may be at most 64 KiB"));
        }
        let mut books = self.books.lock().expect("demo lock is never poisoned");
        let book = books.get_mut(&name).ok_or_else(|| Status::not_found(format!("book `{name}` does not exist")))?;
        set(book, "cover_thumbnail", Value::Bytes(data));
        set(book, "cover_content_type", Value::String(string(&cover, "content_type")));
        Ok(book.clone())
    }

    pub(super) fn get_cover(&self, request: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let book = self.get_book(request)?;
        let mut body = DynamicMessage::new(self.descriptor("google.api.HttpBody"));
        let content_type = string(&book, "cover_content_type");
        if content_type.is_empty() {
            return Err(Status::not_found(format!("book `{}` has no cover", string(&book, "name"))));
        }
        set(&mut body, "content_type", Value::String(content_type));
        if let Some(data) = book.get_field_by_name("cover_thumbnail") {
            set(&mut body, "data", data.into_owned());
        }
        Ok(body)
    }

    /// The shelf as CSV chunks: a header line, then one line per book.
    pub(super) fn export(&self, request: &DynamicMessage) -> Result<Vec<DynamicMessage>, Status> {
        let parent = string(request, "parent");
        check_shelf_name(&parent)?;
        let prefix = format!("{parent}/books/");
        let books = self.books.lock().expect("demo lock is never poisoned");
        let mut lines = vec!["name,title,author\n".to_owned()];
        for (name, book) in books.iter().filter(|(name, _)| name.starts_with(&prefix)) {
            let quote = |text: String| format!("\"{}\"", text.replace('"', "\"\""));
            lines.push(format!(
                "{},{},{}\n",
                quote(name.clone()),
                quote(string(book, "title")),
                quote(string(book, "author"))
            ));
        }
        Ok(lines
            .into_iter()
            .map(|line| {
                let mut chunk = DynamicMessage::new(self.descriptor("google.api.HttpBody"));
                set(&mut chunk, "content_type", Value::String("text/csv".into()));
                set(&mut chunk, "data", Value::Bytes(line.into_bytes().into()));
                chunk
            })
            .collect())
    }

    /// How many WatchBooks streams are open.
    pub(super) fn watchers(&self) -> usize {
        self.events.receiver_count()
    }

    /// Book events on `parent`'s shelf from now on.
    pub(super) fn watch(
        &self,
        request: &DynamicMessage,
    ) -> Result<(String, broadcast::Receiver<DynamicMessage>), Status> {
        let parent = string(request, "parent");
        check_shelf_name(&parent)?;
        Ok((format!("{parent}/books/"), self.events.subscribe()))
    }

    pub(super) fn import_response(&self, names: Vec<String>) -> DynamicMessage {
        let mut response = DynamicMessage::new(self.descriptor("catalog.v1.ImportBooksResponse"));
        set(&mut response, "imported", Value::I32(i32::try_from(names.len()).unwrap_or(i32::MAX)));
        set(&mut response, "names", Value::List(names.into_iter().map(Value::String).collect()));
        response
    }

    pub(super) fn answer_chat(&self, message: &DynamicMessage) -> Result<DynamicMessage, Status> {
        let book = string(message, "book");
        check_book_name(&book)?;
        let mut reply = DynamicMessage::new(self.descriptor("catalog.v1.ChatMessage"));
        set(&mut reply, "book", Value::String(book));
        set(&mut reply, "author", Value::String("librarian".into()));
        set(&mut reply, "text", Value::String(format!("re: {}", string(message, "text"))));
        let ts = timestamp(&self.descriptor("google.protobuf.Timestamp"), SystemTime::now());
        set(&mut reply, "sent_time", Value::Message(ts));
        Ok(reply)
    }

    /// INVALID_ARGUMENT with a google.rpc.BadRequest detail naming the field, as careful
    /// services send it.
    pub(super) fn bad_request(&self, message: String, field: &str, description: &str) -> Status {
        let mut violation = DynamicMessage::new(self.descriptor("google.rpc.BadRequest.FieldViolation"));
        set(&mut violation, "field", Value::String(field.into()));
        set(&mut violation, "description", Value::String(description.into()));
        let mut detail = DynamicMessage::new(self.descriptor("google.rpc.BadRequest"));
        set(&mut detail, "field_violations", Value::List(vec![Value::Message(violation)]));
        let mut any = DynamicMessage::new(self.descriptor("google.protobuf.Any"));
        set(&mut any, "type_url", Value::String("type.googleapis.com/google.rpc.BadRequest".into()));
        set(&mut any, "value", Value::Bytes(detail.encode_to_vec().into()));
        let mut status = DynamicMessage::new(self.descriptor("google.rpc.Status"));
        set(&mut status, "code", Value::I32(tonic::Code::InvalidArgument as i32));
        set(&mut status, "message", Value::String(message.clone()));
        set(&mut status, "details", Value::List(vec![Value::Message(any)]));
        Status::with_details(tonic::Code::InvalidArgument, message, status.encode_to_vec().into())
    }

    fn publish(&self, kind: i32, book: &DynamicMessage) {
        let mut event = DynamicMessage::new(self.descriptor("catalog.v1.BookEvent"));
        set(&mut event, "kind", Value::EnumNumber(kind));
        set(&mut event, "book", Value::Message(book.clone()));
        let ts = timestamp(&self.descriptor("google.protobuf.Timestamp"), SystemTime::now());
        set(&mut event, "event_time", Value::Message(ts));
        let _ = self.events.send(event);
    }
}

/// True if `event`'s book is under `prefix`.
pub(super) fn event_matches(event: &DynamicMessage, prefix: &str) -> bool {
    message(event, "book").is_some_and(|b| string(&b, "name").starts_with(prefix))
}

fn check_shelf_name(name: &str) -> Result<(), Status> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["shelves", shelf] if !shelf.is_empty() => Ok(()),
        _ => Err(Status::invalid_argument(format!("`{name}` is not a shelf name (shelves/{{shelf}})"))),
    }
}

fn check_book_name(name: &str) -> Result<(), Status> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["shelves", shelf, "books", book] if !shelf.is_empty() && !book.is_empty() => Ok(()),
        _ => Err(Status::invalid_argument(format!("`{name}` is not a book name (shelves/{{shelf}}/books/{{book}})"))),
    }
}
