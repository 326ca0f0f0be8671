"""import-linter contract `module_boundaries`: OpsDeck's module rules, for every module there is
and every module added later, with no per-module configuration (docs/architecture.md).

- The kernel (`kernel`, e.g. opsdeck.core and opsdeck.settings) imports no module.
- A module (a direct subpackage of the root that is neither kernel nor composition root)
  imports another module only through that module's public rooms (`public`: its service,
  schemas, request dependencies), never its tables, router, tasks or worker code.
- The composition roots (`roots`: the registry, app, cli, the metadata import, migrations) may
  put modules together.

Only direct imports are checked: an indirect path always starts with a direct import that this
contract sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


@dataclass(frozen=True)
class _Breach:
    importer: str
    imported: str
    line: int | None
    rule: str


class ModuleBoundariesContract(Contract):
    type_name = "module_boundaries"

    root = fields.StringField()
    kernel = fields.ListField(subfield=fields.StringField())
    roots = fields.ListField(subfield=fields.StringField())
    public = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        root = str(self.root)
        kernel = {f"{root}.{name}" for name in self.kernel}
        roots = {f"{root}.{name}" for name in self.roots}
        public = {str(name) for name in self.public}
        modules = {
            child
            for child in graph.find_children(root)
            if graph.find_children(child) and child not in kernel | roots
        }

        def owner(name: str, candidates: set[str]) -> str | None:
            return next((c for c in candidates if name == c or name.startswith(c + ".")), None)

        breaches: list[_Breach] = []
        for importer in sorted(graph.modules):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                target = owner(imported, modules)
                if target is None:
                    continue
                rule = None
                if owner(importer, kernel):
                    rule = "the kernel imports no module"
                else:
                    source = owner(importer, modules)
                    if source is not None and source != target:
                        room = imported[len(target) + 1 :].split(".", 1)[0]
                        if room not in public:
                            rule = (
                                f"another module is used through its {', '.join(sorted(public))}"
                                " only"
                            )
                if rule:
                    for detail in graph.get_import_details(importer=importer, imported=imported):
                        breaches.append(_Breach(importer, imported, detail["line_number"], rule))
                    if not graph.get_import_details(importer=importer, imported=imported):
                        breaches.append(_Breach(importer, imported, None, rule))
        return ContractCheck(kept=not breaches, metadata={"breaches": breaches})

    def render_broken_contract(self, check: ContractCheck) -> None:
        breaches: list[_Breach] = check.metadata["breaches"]
        for breach in breaches:
            where = f" (l.{breach.line})" if breach.line else ""
            output.print_error(f"{breach.importer} -> {breach.imported}{where}: {breach.rule}")
            output.new_line()
