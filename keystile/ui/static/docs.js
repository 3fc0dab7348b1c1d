/* Renders /openapi.json as a readable reference. No library, nothing fetched from elsewhere. */
"use strict";

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

let doc;
const resolve = (schema) => (schema && schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema || {});

function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.allOf) return schema.allOf.map(typeOf).join(" & ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  return Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "object";
}

function fields(schema, depth = 0) {
  schema = resolve(schema);
  if (schema.allOf) return h("div", {}, schema.allOf.map((s) => fields(s, depth)));
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  if (!Object.keys(props).length) return h("p", { class: "schema-type" }, typeOf(schema));
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Field", "Type", "About"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, Object.entries(props).map(([name, s]) => h("tr", {},
      h("td", { class: "mono" }, name, required.has(name) ? h("span", { class: "req", title: "required" }, " *") : null),
      h("td", { class: "schema-type" }, typeOf(s)),
      h("td", {}, s.description || resolve(s).description || "", s.minimum !== undefined ? ` (min ${s.minimum})` : ""))))));
}

function operation(path, method, op) {
  const id = `${method}-${path}`.replace(/[^a-zA-Z0-9]+/g, "-");
  const body = op.requestBody && op.requestBody.content && Object.values(op.requestBody.content)[0];
  const ok = op.responses && op.responses["200"];
  const okSchema = ok && ok.content && Object.values(ok.content)[0].schema;
  const security = (op.security || []).map((s) => Object.keys(s)[0]).join(", ") || "none";
  return h("details", { class: "panel op", id },
    h("summary", {}, h("span", { class: `method ${method}` }, method.toUpperCase()), h("span", { class: "path" }, path), h("span", { class: "summary" }, op.summary || "")),
    op.description ? h("p", {}, op.description) : null,
    h("p", { class: "sub" }, `Authentication: ${security}`),
    op.parameters ? h("div", {}, h("h3", {}, "Parameters"), h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "In", "Type", "About"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, op.parameters.map((p) => h("tr", {}, h("td", { class: "mono" }, p.name, p.required ? h("span", { class: "req" }, " *") : null), h("td", {}, p.in), h("td", { class: "schema-type" }, typeOf(p.schema)), h("td", {}, p.description || "")))))) : null,
    body ? h("div", {}, h("h3", {}, `Request body (${typeOf(body.schema)})`), fields(body.schema)) : null,
    okSchema ? h("div", {}, h("h3", {}, `Answer (${typeOf(okSchema)})`), fields(okSchema)) : null,
    h("h3", {}, "Statuses"), h("p", {}, Object.entries(op.responses || {}).map(([code, r]) => `${code}: ${r.description}`).join(" · ")));
}

async function main() {
  const main = document.getElementById("main");
  const response = await fetch("/openapi.json");
  doc = await response.json();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  const toc = document.getElementById("toc");
  const sections = [];
  for (const [tag, ops] of byTag) {
    toc.append(h("h2", {}, tag));
    for (const [path, method] of ops) toc.append(h("a", { href: `#${`${method}-${path}`.replace(/[^a-zA-Z0-9]+/g, "-")}` }, `${method.toUpperCase()} ${path}`));
    sections.push(h("section", { "aria-label": tag }, h("h2", { class: "tag" }, tag), ops.map(([p, m, o]) => operation(p, m, o))));
  }
  main.replaceChildren(h("h1", {}, `${doc.info.title} API reference`), h("p", { class: "sub" }, doc.info.description, " ", h("a", { href: "/openapi.json" }, "OpenAPI document")), ...sections);
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target) { target.open = true; target.scrollIntoView(); }
}

main().catch((e) => { document.getElementById("main").append(h("p", { class: "error" }, `Could not load /openapi.json: ${e.message}`)); });
