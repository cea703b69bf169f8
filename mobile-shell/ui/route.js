// The route: what location.hash names. #/ (my jobs; ?filter=today|upcoming|all), #/job/{id},
// #/job/{id}/signoff, #/signin.

export function parseRoute() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = h.split("?");
  const params = new URLSearchParams(query);
  let m;
  if (path === "/signin") return { name: "signin" };
  if ((m = path.match(/^\/job\/([^/]+)\/signoff\/?$/))) return { name: "signoff", id: decodeURIComponent(m[1]) };
  if ((m = path.match(/^\/job\/([^/]+)\/?$/))) return { name: "job", id: decodeURIComponent(m[1]) };
  const f = params.get("filter");
  return { name: "list", filter: ["today", "upcoming", "all"].includes(f) ? f : "today", bare: (path === "/" || path === "") && !query };
}
