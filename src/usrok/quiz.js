// Progressive enhancement for the static self-check quizzes (they work without it):
// announce the feedback for the chosen answer to screen readers.
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!input.matches || !input.matches(".usrok-quiz input[type=radio]")) return;
  const fieldset = input.closest("fieldset");
  const status = fieldset && fieldset.querySelector(".usrok-status");
  const why = input.parentElement.querySelector(".usrok-why");
  if (status && why) status.textContent = why.textContent;
});
