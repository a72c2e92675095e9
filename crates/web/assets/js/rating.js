// The rating form after a completed trip, for either side.

import { clearErrors, el, showError } from "./api.js";

export function ratingForm(slot, client, tripId, whom) {
  const stars = [1, 2, 3, 4, 5].map((n) =>
    el("label", { class: "choice" }, el("input", { type: "radio", name: "stars", value: String(n) }), `${n} ${n === 1 ? "star" : "stars"}`),
  );
  const form = el(
    "form",
    { class: "card", id: "rate-form", novalidate: true, "aria-labelledby": "rate-title" },
    el("h2", { id: "rate-title" }, `Rate your ${whom}`),
    el("p", { class: "form-error", id: "rate-form-error", role: "alert", hidden: true }),
    el("fieldset", {}, el("legend", {}, "Stars"), el("div", { class: "stars" }, stars),
      el("p", { class: "field-error", id: "rate-stars-error", "data-error-for": "stars", role: "alert", hidden: true })),
    el("div", { class: "field" },
      el("label", { for: "rate-comment" }, "Comment (optional, up to 500 characters)"),
      el("textarea", { id: "rate-comment", name: "comment", rows: "2" }),
      el("p", { class: "field-error", id: "rate-comment-error", "data-error-for": "comment", role: "alert", hidden: true })),
    el("button", { type: "submit" }, "Send rating"),
  );
  slot.replaceChildren(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const data = new FormData(form);
    const body = {};
    if (data.get("stars")) body.stars = Number(data.get("stars"));
    const comment = String(data.get("comment") || "").trim();
    if (comment) body.comment = comment;
    try {
      const rated = await client.call("POST", `/v1/trips/${tripId}/rating`, body);
      const average = rated.ratee_rating?.average;
      slot.replaceChildren(
        el("section", { class: "card", id: "rated" },
          el("h2", {}, "Thank you"),
          el("p", {}, `You gave your ${whom} ${rated.stars} ${rated.stars === 1 ? "star" : "stars"}.`,
            average != null ? ` Their average is now ${average.toFixed(2)} from ${rated.ratee_rating.count} ratings.` : "")),
      );
    } catch (e) {
      showError(form, e);
    }
  });
}
