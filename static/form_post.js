// Submits the authorization response for the user; without JavaScript, they press Continue.
document.getElementById("response").submit();
