//! Turning user inputs into a registration: .proto sources compiled in-process by protox (no
//! protoc), or binary FileDescriptorSets (`.binpb`, `.pb`, `.desc`, `.protoset`). Compile errors
//! are reported as `file:line:column: problem`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use miette::Diagnostic;
use prost::Message;
use protox::file::{ChainFileResolver, IncludeFileResolver};

use super::builtin::builtin_resolver;
use super::normalize::RawFileSet;
use super::{Registration, RegistryError, builtin_pool};

/// Compiles or decodes `inputs` into one normalised registration. `.proto` files are compiled
/// with `includes` as import roots (default: each file's own directory); other files are read
/// as binary FileDescriptorSets. NAME defaults to the proto package of the first file.
pub fn compile_sources(
    inputs: &[PathBuf],
    includes: &[PathBuf],
    name: Option<&str>,
) -> Result<Registration, RegistryError> {
    let Some(first) = inputs.first() else {
        return Err(RegistryError::Compile("no input files given".into()));
    };
    let (protos, sets): (Vec<&PathBuf>, Vec<&PathBuf>) =
        inputs.iter().partition(|p| p.extension().is_some_and(|e| e == "proto"));
    let mut files: Vec<Bytes> = Vec::new();
    let mut first_package = None;
    if !protos.is_empty() {
        let (compiled, package) = compile_protos(&protos, includes)?;
        files.extend(compiled);
        if protos[0] == first {
            first_package = Some(package);
        }
    }
    for path in sets {
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Read { path: path.clone(), source })?;
        let set = RawFileSet::decode(bytes.as_slice()).map_err(|e| RegistryError::InvalidDescriptors {
            what: path.display().to_string(),
            message: format!("not a .proto file nor a binary FileDescriptorSet ({e})"),
        })?;
        if path == first {
            first_package = Some(main_package(&set.file));
        }
        files.extend(set.file);
    }
    check_complete(&files, first)?;
    let name = match name {
        Some(name) => name.to_owned(),
        None => first_package
            .flatten()
            .ok_or_else(|| RegistryError::InvalidName(format!("{} has no package; pass --name", first.display())))?,
    };
    Registration::from_files(&name, files)
}

fn compile_protos(protos: &[&PathBuf], includes: &[PathBuf]) -> Result<(Vec<Bytes>, Option<String>), RegistryError> {
    let mut roots: Vec<PathBuf> = includes.to_vec();
    if roots.is_empty() {
        for proto in protos {
            let parent = proto.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !roots.iter().any(|r| r == parent) {
                roots.push(parent.to_owned());
            }
        }
    }
    let mut resolver = ChainFileResolver::new();
    for root in &roots {
        resolver.add(IncludeFileResolver::new(root.clone()));
    }
    resolver.add(builtin_resolver());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    let mut first_package = None;
    for (i, proto) in protos.iter().enumerate() {
        if !proto.exists() {
            return Err(RegistryError::Compile(format!("{}: file not found", proto.display())));
        }
        compiler.open_file(proto).map_err(|e| RegistryError::Compile(format_compile_error(&e, roots.as_slice())))?;
        if i == 0 {
            first_package = compiler
                .files()
                .find(|f| !f.is_import())
                .and_then(|f| builtin_free_package(compiler.descriptor_pool(), f.name()));
        }
    }
    let set = RawFileSet::decode(compiler.encode_file_descriptor_set().as_slice())
        .expect("protox encodes a valid FileDescriptorSet");
    Ok((set.file, first_package))
}

fn builtin_free_package(pool: prost_reflect::DescriptorPool, file: &str) -> Option<String> {
    pool.get_file_by_name(file).map(|f| f.package_name().to_owned()).filter(|p| !p.is_empty())
}

/// For a binary set: the package of its first file defining a service, else of its first file.
fn main_package(files: &[Bytes]) -> Option<String> {
    let protos: Vec<prost_types::FileDescriptorProto> =
        files.iter().filter_map(|f| prost_types::FileDescriptorProto::decode(f.clone()).ok()).collect();
    protos
        .iter()
        .find(|f| !f.service.is_empty())
        .or_else(|| protos.iter().find(|f| !super::is_builtin_file(f.name())))
        .map(|f| f.package().to_owned())
        .filter(|p| !p.is_empty())
}

/// Every import must be in the inputs or built in.
fn check_complete(files: &[Bytes], first: &Path) -> Result<(), RegistryError> {
    let mut pool = builtin_pool().clone();
    let set = RawFileSet { file: files.to_vec() };
    pool.decode_file_descriptor_set(set.encode_to_vec().as_slice()).map_err(|e| RegistryError::InvalidDescriptors {
        what: first.display().to_string(),
        message: format!("{e} (a descriptor set must include its imports: protoc --include_imports)"),
    })
}

/// `file:line:column: message` from a protox error, using its source spans.
fn format_compile_error(error: &protox::Error, roots: &[PathBuf]) -> String {
    let message = error.to_string();
    let file = error.file().map(str::to_owned);
    let location = error.labels().and_then(|mut labels| labels.next()).and_then(|label| {
        let source = error.source_code()?;
        let contents = source.read_span(label.inner(), 0, 0).ok()?;
        Some((contents.line() + 1, contents.column() + 1, label.label().map(str::to_owned)))
    });
    let help = error.help().map(|h| format!(" ({h})")).unwrap_or_default();
    match (file, location) {
        (Some(file), Some((line, column, label))) => {
            let path = display_path(&file, roots);
            let label = label.map(|l| format!(" [{l}]")).unwrap_or_default();
            format!("{path}:{line}:{column}: {message}{label}{help}")
        }
        (Some(file), None) => format!("{}: {message}{help}", display_path(&file, roots)),
        (None, _) => format!("{message}{help}"),
    }
}

/// The on-disk path of an import name, when it is under one of the roots.
fn display_path(name: &str, roots: &[PathBuf]) -> String {
    roots.iter().map(|r| r.join(name)).find(|p| p.exists()).map_or_else(|| name.to_owned(), |p| p.display().to_string())
}
