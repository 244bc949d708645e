#!/usr/bin/env node
// Validates Kubernetes manifests offline, as `kubectl apply` would check them:
//
//   node scripts/k8s-validate.mjs [--dump] PATH...
//
// PATH is a kustomization directory (its `resources`, followed into directories that
// hold a kustomization.yaml of their own), a YAML file of one or more documents, or `-`
// for standard input (e.g. the output of `kubectl kustomize`). Every document is
//
//   - parsed as YAML 1.1, as the API server's YAML reader does (so `on` is a boolean and
//     `0440` is octal, 288), with duplicate keys refused;
//   - validated with the model class of its apiVersion and kind from the npm package
//     kubernetes-models (or @kubernetes-models/prometheus-operator): `new
//     Deployment(obj).validate()`, the OpenAPI schemas of the Kubernetes API;
//   - checked for fields the schema does not know (kubectl's default
//     --validate=strict refuses them, and the schemas alone let them through), read from
//     the same package's type declarations; and for null values.
//
// Prints one line per problem on stderr and a summary on stdout; exits 1 when there is
// any problem, 2 on bad usage. --dump prints {documents: [{build, source, object}],
// problems: [{build, text}]}
// as JSON on stdout instead (test/integration/test_kubernetes.py reads it, so that its
// cross-checks see the documents exactly as parsed here).
//
// Installed by `make docs-deps` (npm ci of the versions pinned in package-lock.json).

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
// What this script understands of a kustomization; anything else is refused rather than
// ignored (kubectl kustomize would apply it, and the documents checked here would differ).
const KUSTOMIZATION_KEYS = new Set(["apiVersion", "kind", "resources"]);
// apiVersion group -> the npm package whose models cover it (default: kubernetes-models).
const CRD_PACKAGES = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

const problems = [];
const documents = [];
let build = ""; // the PATH being read: documents and problems carry it

function problem(where, msg) {
	problems.push({ build, text: `${where}: ${msg}` });
}

function shown(path) {
	return path === "-" ? "<stdin>" : relative(process.cwd(), path) || ".";
}

// ------------------------------------------------------------------ reading

function parseYaml(text, source) {
	const out = [];
	const docs = parseAllDocuments(text, { version: "1.1", uniqueKeys: true, prettyErrors: true });
	docs.forEach((doc, i) => {
		const where = `${source}#${i + 1}`;
		for (const e of [...doc.errors, ...doc.warnings])
			problem(where, `YAML: ${e.message.split("\n")[0]}`);
		if (doc.errors.length)
			return;
		const obj = doc.toJS({ maxAliasCount: 100 });
		if (obj === null || obj === undefined)
			return; // an empty document (comments only, a trailing ---)
		out.push({ where, obj });
	});
	return out;
}

function readFileDocs(path) {
	let text;
	try {
		text = path === "-" ? readFileSync(0, "utf8") : readFileSync(path, "utf8");
	} catch (e) {
		problem(shown(path), `cannot read: ${e.message}`);
		return [];
	}
	return parseYaml(text, shown(path));
}

function kustomizationIn(dir) {
	return KUSTOMIZATION_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
}

// The resources of the kustomization in dir, in order, as kubectl kustomize lists them.
function readKustomization(dir, seen) {
	const file = kustomizationIn(dir);
	if (!file) {
		problem(shown(dir), "a directory without a kustomization.yaml");
		return [];
	}
	if (seen.has(dir)) {
		problem(shown(file), "cycle: reached again through its resources");
		return [];
	}
	seen = new Set(seen).add(dir);
	const docs = readFileDocs(file);
	if (docs.length !== 1) {
		problem(shown(file), `expected one document, found ${docs.length}`);
		return [];
	}
	const k = docs[0].obj;
	if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
		problem(docs[0].where, "not a kustomize.config.k8s.io/v1beta1 Kustomization");
	for (const key of Object.keys(k))
		if (!KUSTOMIZATION_KEYS.has(key))
			problem(docs[0].where, `\`${key}\`: this script resolves only ` +
			    `${[...KUSTOMIZATION_KEYS].join(", ")}; teach it, or keep ${key} in an overlay`);
	if (!Array.isArray(k.resources) || k.resources.length === 0) {
		problem(docs[0].where, "`resources` must be a non-empty list");
		return [];
	}
	const out = [];
	for (const r of k.resources) {
		const path = resolve(dir, String(r));
		if (!existsSync(path))
			problem(docs[0].where, `resource ${r}: no such file or directory`);
		else if (statSync(path).isDirectory())
			out.push(...readKustomization(path, seen));
		else
			out.push(...readFileDocs(path));
	}
	return out;
}

function readPath(path) {
	if (path !== "-" && existsSync(path) && statSync(path).isDirectory())
		return readKustomization(resolve(path), new Set());
	return readFileDocs(path === "-" ? path : resolve(path));
}

// ------------------------------------------------------------------ models

function modelSpecifier(apiVersion, kind) {
	const slash = apiVersion.indexOf("/");
	const group = slash < 0 ? "" : apiVersion.slice(0, slash);
	const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
	const pkg = CRD_PACKAGES[group] || "kubernetes-models";
	return `${pkg}/${group ? `${group}/` : ""}${version}/${kind}`;
}

// Field names by type, read from the packages' .d.ts files: the declared interface of each
// model (`export interface IProbe { "exec"?: IIoK8sApiCoreV1ExecAction; ... }`) under its
// global name (`export type { IProbe as IIoK8sApiCoreV1Probe }`), reached from the model's
// own file through the files' imports, as they are needed.
const typeIndex = { interfaces: new Map(), names: new Map(), files: new Set(), imports: new Map() };

function propType(text) {
	text = text.trim().replace(/;$/, "").trim();
	let m = text.match(/^Array<(\w+)>$/);
	if (m)
		return { array: m[1] };
	m = text.match(/^\{\s*\[key: string\]: (\w+);?\s*\}$/s);
	if (m)
		return { map: m[1] };
	m = text.match(/^(\w+)$/);
	return m ? { name: m[1] } : {};
}

function parseInterface(body) {
	const props = new Map();
	const lines = body.split("\n");
	for (let i = 0; i < lines.length; i++) {
		const m = lines[i].match(/^ {4}"([^"]+)"\??: (.*)$/);
		if (!m)
			continue;
		let text = m[2];
		if (text.trim() === "{") { // an inline type over several lines, up to "    };"
			while (++i < lines.length && !/^ {4}\};?$/.test(lines[i]))
				text += " " + lines[i].trim();
			text += " }";
		}
		props.set(m[1], propType(text));
	}
	return props;
}

function indexFile(file) {
	if (typeIndex.files.has(file))
		return;
	typeIndex.files.add(file);
	const text = readFileSync(file, "utf8");
	for (const m of text.matchAll(/^export interface (\w+)(?: extends [^{]*)? \{\n([\s\S]*?)^\}/gm))
		typeIndex.interfaces.set(`${file}#${m[1]}`, parseInterface(m[2]));
	for (const m of text.matchAll(/^export type \{([^}]*)\}/gm))
		for (const part of m[1].split(",")) {
			const [local, as, global] = part.trim().split(/\s+/);
			if (as === "as" && typeIndex.interfaces.has(`${file}#${local}`))
				typeIndex.names.set(global, `${file}#${local}`);
		}
	for (const m of text.matchAll(/^import \{([^}]*)\} from "([^"]+)";/gm))
		for (const name of m[1].split(",").map((n) => n.trim()).filter(Boolean))
			if (!typeIndex.imports.has(name))
				typeIndex.imports.set(name, { spec: m[2], from: file });
}

// The interface key of a global type name, indexing the file that declares it if need be.
function lookup(name) {
	if (!typeIndex.names.has(name) && typeIndex.imports.has(name)) {
		const { spec, from } = typeIndex.imports.get(name);
		typeIndex.imports.delete(name);
		try {
			const js = spec.startsWith(".") ? join(dirname(from), spec) :
			    fileURLToPath(import.meta.resolve(spec));
			const dts = js.replace(/\.js$/, ".d.ts");
			if (existsSync(dts))
				indexFile(dts);
		} catch {
			// not a model (e.g. @kubernetes-models/base): no fields to check
		}
	}
	return typeIndex.names.get(name);
}

function unknownFields(value, key, path, where) {
	const props = typeIndex.interfaces.get(key);
	if (!props || value === null || typeof value !== "object" || Array.isArray(value))
		return; // the schema validation reports wrong types
	for (const [field, v] of Object.entries(value)) {
		const t = props.get(field);
		const at = `${path}/${field}`;
		if (!t) {
			problem(where, `${at}: unknown field "${field}" (kubectl's strict validation ` +
			    `refuses it)`);
			continue;
		}
		const sub = lookup;
		if (t.name && sub(t.name))
			unknownFields(v, sub(t.name), at, where);
		else if (t.array && sub(t.array) && Array.isArray(v))
			v.forEach((e, i) => unknownFields(e, sub(t.array), `${at}/${i}`, where));
		else if (t.map && sub(t.map) && v && typeof v === "object")
			for (const [k, e] of Object.entries(v))
				unknownFields(e, sub(t.map), `${at}/${k}`, where);
	}
}

function nulls(value, path, where) {
	if (value === null)
		problem(where, `${path || "/"}: null (an empty value in YAML: quote "" if meant)`);
	else if (Array.isArray(value))
		value.forEach((e, i) => nulls(e, `${path}/${i}`, where));
	else if (typeof value === "object")
		for (const [k, e] of Object.entries(value))
			nulls(e, `${path}/${k}`, where);
}

async function validate({ where, obj }) {
	if (typeof obj !== "object" || Array.isArray(obj)) {
		problem(where, "not a mapping");
		return;
	}
	const { apiVersion, kind } = obj;
	const name = obj.metadata && obj.metadata.name;
	const label = `${where} ${kind}/${name}`;
	if (typeof apiVersion !== "string" || typeof kind !== "string") {
		problem(where, "no apiVersion or kind");
		return;
	}
	if (typeof name !== "string" || name === "")
		problem(label, "metadata.name is missing");
	documents.push({ build, source: where, object: obj });
	const spec = modelSpecifier(apiVersion, kind);
	let Model, dts;
	try {
		Model = (await import(spec))[kind];
		dts = fileURLToPath(import.meta.resolve(spec)).replace(/\.js$/, ".d.ts");
	} catch (e) {
		problem(label, `no schema for ${apiVersion} ${kind} (${spec}: ${e.code || e.message})`);
		return;
	}
	// Secret data as kubectl kustomize writes it: base64 wrapped over lines, which the
	// API server's decoder (Go's encoding/base64) reads; the schema's "byte" does not.
	let checked = obj;
	if (kind === "Secret" && obj.data && typeof obj.data === "object")
		checked = { ...obj, data: Object.fromEntries(Object.entries(obj.data).map(
		    ([k, v]) => [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v])) };
	try {
		new Model(checked).validate();
	} catch (e) {
		const errs = Array.isArray(e.errors) && e.errors.length ? e.errors : [e];
		for (const err of errs) {
			const at = err.instancePath !== undefined ? err.instancePath || "/" : "";
			const why = err.instancePath !== undefined ?
			    `${err.message || err.keyword} ${JSON.stringify(err.params || {})}` :
			    err.message;
			problem(label, `${at} ${why}`.trim());
		}
	}
	nulls(obj, "", label);
	indexFile(dts);
	unknownFields(obj, `${dts}#I${kind}`, "", label);
	if (!typeIndex.interfaces.has(`${dts}#I${kind}`))
		problem(label, `no type declaration I${kind} in ${shown(dts)}`);
}

// ------------------------------------------------------------------ main

const args = process.argv.slice(2);
const dump = args.includes("--dump");
const paths = args.filter((a) => a !== "--dump");
if (paths.length === 0 || paths.some((a) => a.startsWith("--"))) {
	console.error("usage: node scripts/k8s-validate.mjs [--dump] PATH... " +
	    "(a kustomization directory, a YAML file, or - for stdin)");
	process.exit(2);
}
// Each PATH is a build of its own (kubectl apply -k PATH): ids are unique within one.
for (const path of paths) {
	build = shown(path);
	const first = documents.length;
	for (const d of readPath(path))
		await validate(d);
	const ids = new Map();
	for (const { source, object } of documents.slice(first)) {
		const id = `${object.apiVersion} ${object.kind} ` +
		    `${object.metadata?.namespace || ""}/${object.metadata?.name}`;
		if (ids.has(id))
			problem(source, `${id} already defined in ${ids.get(id)} (kustomize refuses that)`);
		ids.set(id, source);
	}
	if (documents.length === first)
		problem(build, "no documents");
}
if (dump) {
	process.stdout.write(JSON.stringify({ documents, problems }) + "\n");
} else {
	for (const p of problems)
		console.error(p.text);
	console.log(`k8s-validate: ${documents.length} documents, ${problems.length} problems`);
}
// Not process.exit(): it would cut a --dump larger than a pipe's buffer short.
process.exitCode = problems.length ? 1 : 0;
