use super::exit;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Dot,
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    recipe: Option<String>,
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
}

pub(super) fn run(args: Args) -> i32 {
    let Some(path) = super::require_recipe(args.recipe, "graph") else {
        return exit::ERROR;
    };
    let Some((_, resolved)) = super::load_recipe(&path) else {
        return exit::ERROR;
    };
    let graph = synup::plan::StageGraph::compile(&resolved);
    crate::console::out(&match args.format {
        Format::Dot => graph.to_dot(),
        Format::Mermaid => graph.to_mermaid(),
    });
    exit::OK
}
